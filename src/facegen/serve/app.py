"""The face-generator service: FastAPI app over the champion generator (``facegen serve`` runs it with uvicorn).

Endpoints (OpenAPI at ``/docs`` and ``/openapi.json``):
- ``GET /generate?seed=&truncation=&size=&format=&gender=&age_bin=&ethnicity=`` one face as JPEG/PNG bytes;
- ``POST /generate`` a bounded batch as JSON (base64 images);
- both take attributes (``gender``, ``age_bin``, ``ethnicity``) for conditional models: 409 when the served version
  is not conditioned on them;
- ``GET /healthz`` (process alive), ``GET /readyz`` (a model is loaded), ``GET /metrics`` (Prometheus);
- ``POST /feedback`` a rating for (version, seed, truncation), stored durably;
- ``POST /admin/reload`` re-resolve the alias now (``Authorization: Bearer $FACEGEN_ADMIN_TOKEN``).
Every face response carries ``X-Facegen-Model-Name``, ``X-Facegen-Model-Version``, ``X-Facegen-Seed`` (``-Seeds``
for batches), ``X-Facegen-Truncation`` and, for requested attributes, ``X-Facegen-Attributes``: with those the face
can be regenerated exactly (see
:mod:`facegen.serve.feedback_export`). Bad parameters get 422 with pydantic's per-field ``detail`` plus a one-line
``message``; sizes come from ``allowed_sizes`` and batches are at most ``max_batch`` faces.
"""

# No `from __future__ import annotations`: FastAPI must see the request models built inside create_app.
import base64
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import torch
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from facegen import __version__ as facegen_version
from facegen.attributes import AGE_BINS, ETHNICITIES, GENDERS
from facegen.serve.feedback import MAX_RATING, MIN_RATING, FeedbackStore
from facegen.serve.imaging import MEDIA_TYPES, encode_face
from facegen.serve.inference import MAX_SEED, AttributesNotSupported, BatchingRenderer, ModelNotReady
from facegen.serve.metrics import MetricsMiddleware, ServiceMetrics
from facegen.serve.loading import LoadedModel
from facegen.serve.model_holder import ModelHolder
from facegen.serve.settings import ServeSettings

logger = logging.getLogger("facegen.serve")

HEADER_MODEL_NAME = "X-Facegen-Model-Name"
HEADER_MODEL_VERSION = "X-Facegen-Model-Version"
HEADER_SEED = "X-Facegen-Seed"
HEADER_SEEDS = "X-Facegen-Seeds"
HEADER_TRUNCATION = "X-Facegen-Truncation"
HEADER_SIZE = "X-Facegen-Size"
HEADER_ATTRIBUTES = "X-Facegen-Attributes"

ENDPOINTS = ("/generate", "/healthz", "/readyz", "/metrics", "/feedback", "/admin/reload", "/docs", "/openapi.json")

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="Latent seed; the same seed gives the same face")]
Truncation = Annotated[
    float,
    Field(ge=0.0, le=1.0, allow_inf_nan=False, description="psi of the truncation trick on z: 1 = none, 0 = mean face"),
]
ImageFormatField = Literal["jpeg", "png"]
Version = Annotated[
    str, Field(pattern=r"^[1-9][0-9]{0,9}$", description="Registry version of the model", examples=["3"])
]


# The vocabulary of facegen.attributes as types: a value outside it is a 422 that lists the allowed values.
Gender = Literal[GENDERS]  # type: ignore[valid-type]
AgeBin = Literal[AGE_BINS]  # type: ignore[valid-type]
Ethnicity = Literal[ETHNICITIES]  # type: ignore[valid-type]


class Attributes(BaseModel):
    """Attributes requested from a conditional generator (the vocabulary of facegen.attributes)."""

    model_config = ConfigDict(extra="forbid")
    gender: Gender | None = None
    age_bin: AgeBin | None = None
    ethnicity: Ethnicity | None = None

    def requested(self) -> dict[str, str]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


GenderQuery = Annotated[Gender | None, Query(description="Requested gender; any when omitted")]
AgeBinQuery = Annotated[AgeBin | None, Query(description="Requested age bin (70+ URL-encoded: 70%2B); any if omitted")]
EthnicityQuery = Annotated[Ethnicity | None, Query(description="Requested ethnicity; any when omitted")]


class GeneratedFace(BaseModel):
    seed: int
    truncation: float
    size: int
    format: ImageFormatField
    media_type: str
    data_base64: str = Field(description="The encoded image, base64")


class GenerateBatchResponse(BaseModel):
    model_name: str
    model_version: str
    images: list[GeneratedFace]


class FeedbackIn(BaseModel):
    """A rating of one face, identified by the version, seed, truncation (and attributes) from its response headers."""

    model_config = ConfigDict(extra="forbid")
    model_version: Version
    seed: Seed
    truncation: Truncation = 1.0
    attributes: Attributes | None = Field(None, description="The attributes the face was generated with, if any")
    rating: int = Field(ge=MIN_RATING, le=MAX_RATING, description=f"{MIN_RATING} (bad) .. {MAX_RATING} (great)")
    comment: str | None = Field(None, max_length=2000)


class FeedbackOut(BaseModel):
    id: int
    model_name: str
    model_version: str
    seed: int
    truncation: float
    attributes: dict[str, str]
    rating: int
    created_at: str


class ReloadOut(BaseModel):
    changed: bool
    previous_version: str | None
    model_version: str | None
    alias_version: str | None
    error: str | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model_name: str
    alias: str
    model_version: str | None = None
    reason: str | None = None


class ErrorOut(BaseModel):
    detail: str


#: Starlette answers a body that is not JSON at all (undecodable bytes) with 400 before validation runs.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not parseable JSON"}
}

#: Well-formed attributes the served version is not conditioned on.
ATTRIBUTE_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Attributes requested from a version that cannot condition on them"}
}


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",)) or "request"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _size_checker(allowed: tuple[int, ...]):
    def check(size: int) -> int:
        if size not in allowed:
            raise ValueError(f"size must be one of {', '.join(map(str, allowed))} (got {size})")
        return size

    return check


def _psi_header(psi: float) -> str:
    return repr(float(psi))


def attributes_header(attributes: dict[str, str]) -> str:
    """``gender=female,age_bin=20-29`` (sorted by name): the requested attributes of a conditional face."""
    return ",".join(f"{key}={value}" for key, value in sorted(attributes.items()))


def create_app(settings: ServeSettings, holder: ModelHolder | None = None) -> FastAPI:
    """The service app. ``holder`` defaults to one built from ``settings``; the app starts and stops it."""
    holder = holder or ModelHolder.from_settings(settings)
    metrics = ServiceMetrics(holder)
    renderer = BatchingRenderer(holder, max_forward_batch=settings.max_forward_batch, on_batch=metrics.observe_batch)
    admin_token = settings.admin_token()
    allowed_sizes = settings.allowed_sizes
    Size = Annotated[
        int,
        Field(
            description=f"Side of the square image; one of {list(allowed_sizes)}",
            json_schema_extra={"enum": list(allowed_sizes)},
        ),
        AfterValidator(_size_checker(allowed_sizes)),
    ]
    max_batch = settings.max_batch

    class GenerateBatchRequest(BaseModel):
        """A batch: explicit ``seeds``, or ``count`` faces from fresh random seeds (returned with the images)."""

        model_config = ConfigDict(
            extra="forbid",
            # Documents the validator below in the schema: not both an array of seeds and an integer count.
            json_schema_extra={
                "not": {
                    "required": ["seeds", "count"],
                    "properties": {"seeds": {"type": "array"}, "count": {"type": "integer"}},
                }
            },
        )
        seeds: list[Seed] | None = Field(None, min_length=1, max_length=max_batch)
        count: int | None = Field(
            None, ge=1, le=max_batch, description="Faces from random seeds when seeds is not given"
        )
        truncation: Truncation = settings.default_truncation
        size: Size = settings.default_size
        format: ImageFormatField = "jpeg"
        attributes: Attributes | None = None

        @model_validator(mode="after")
        def _seeds_or_count(self):
            if self.seeds is not None and self.count is not None:
                raise ValueError("give either seeds or count, not both")
            return self

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads is not None:
            torch.set_num_threads(settings.torch_threads)
        store = await run_in_threadpool(FeedbackStore, settings.resolved_feedback_db())
        app.state.feedback = store
        await run_in_threadpool(holder.start)
        renderer.start()
        if admin_token is None:
            logger.warning("admin endpoints are disabled: %s is not set", settings.admin_token_env)
        try:
            yield
        finally:
            renderer.stop()
            await run_in_threadpool(holder.stop)
            store.close()

    app = FastAPI(
        title="facegen face generator",
        version=facegen_version,
        description=(
            f"Faces from `{settings.model_uri()}`. Headers `{HEADER_MODEL_VERSION}`, `{HEADER_SEED}` and "
            f"`{HEADER_TRUNCATION}` identify every face; `POST /feedback` rates it."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.renderer = renderer
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=ENDPOINTS)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(error.errors())
        return JSONResponse(status_code=422, content={"detail": errors, "message": _validation_message(errors)})

    bearer = HTTPBearer(auto_error=False, description=f"The token in ${settings.admin_token_env}")

    def require_admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if admin_token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"admin endpoints are disabled: {settings.admin_token_env} is not set"
            )
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "admin token required (Authorization: Bearer …)",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        if not secrets.compare_digest(credentials.credentials.encode(), admin_token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid admin token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def render(seeds: list[int], psi: float, attributes: dict[str, str] | None) -> tuple[LoadedModel, Any]:
        try:
            return await renderer.render(seeds, psi, attributes)
        except ModelNotReady as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
        except AttributesNotSupported as error:
            # Well-formed attributes the served version cannot honour: a conflict with the current state (the same
            # request succeeds once a version conditioned on them is champion), not a malformed request.
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error

    face_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()},
            "description": "One face",
            "headers": {
                HEADER_MODEL_NAME: {"schema": {"type": "string"}, "description": "Registered model name"},
                HEADER_MODEL_VERSION: {"schema": {"type": "string"}, "description": "Registry version that made it"},
                HEADER_SEED: {"schema": {"type": "string"}, "description": "Seed of the face"},
                HEADER_TRUNCATION: {"schema": {"type": "string"}, "description": "Truncation psi"},
                HEADER_SIZE: {"schema": {"type": "string"}, "description": "Side in pixels"},
                HEADER_ATTRIBUTES: {
                    "schema": {"type": "string"},
                    "description": "Requested attributes (gender=female,age_bin=20-29), only when any were requested",
                },
            },
        },
        **ATTRIBUTE_CONFLICT,
        503: {"model": ErrorOut, "description": "No model loaded yet"},
    }

    @app.get("/generate", response_class=Response, responses=face_responses, summary="One face")
    async def generate_one(
        seed: Annotated[int | None, Query(ge=0, le=MAX_SEED, description="Latent seed; random when omitted")] = None,
        truncation: Annotated[
            float, Query(ge=0.0, le=1.0, allow_inf_nan=False, description="Truncation psi in [0, 1]")
        ] = settings.default_truncation,
        size: Annotated[
            int,
            Query(description=f"One of {list(allowed_sizes)}", json_schema_extra={"enum": list(allowed_sizes)}),
            AfterValidator(_size_checker(allowed_sizes)),
        ] = settings.default_size,
        format: Annotated[ImageFormatField, Query(description="Image encoding")] = "jpeg",
        gender: GenderQuery = None,
        age_bin: AgeBinQuery = None,
        ethnicity: EthnicityQuery = None,
    ) -> Response:
        seed = secrets.randbelow(2**32) if seed is None else seed
        attributes = Attributes(gender=gender, age_bin=age_bin, ethnicity=ethnicity).requested()
        model, faces = await render([seed], truncation, attributes)
        data = await run_in_threadpool(
            encode_face, faces[0], size=size, fmt=format,
            jpeg_quality=settings.jpeg_quality, png_compress_level=settings.png_compress_level,
        )  # fmt: skip
        headers = {
            HEADER_MODEL_NAME: model.name,
            HEADER_MODEL_VERSION: model.version,
            HEADER_SEED: str(seed),
            HEADER_TRUNCATION: _psi_header(truncation),
            HEADER_SIZE: str(size),
            "Cache-Control": "no-store",  # the same URL gives another face once the champion moves
        }
        if attributes:
            headers[HEADER_ATTRIBUTES] = attributes_header(attributes)
        return Response(content=data, media_type=MEDIA_TYPES[format], headers=headers)

    @app.post(
        "/generate",
        response_model=GenerateBatchResponse,
        responses={**BODY_ERRORS, **ATTRIBUTE_CONFLICT, 503: {"model": ErrorOut, "description": "No model loaded yet"}},
        summary=f"A batch of up to {max_batch} faces",
    )
    async def generate_batch(request: GenerateBatchRequest, response: Response) -> GenerateBatchResponse:
        seeds = request.seeds or [secrets.randbelow(2**32) for _ in range(request.count or 1)]
        attributes = request.attributes.requested() if request.attributes else {}
        model, faces = await render(seeds, request.truncation, attributes)

        def encode_all() -> list[str]:
            return [
                base64.b64encode(
                    encode_face(
                        face,
                        size=request.size,
                        fmt=request.format,
                        jpeg_quality=settings.jpeg_quality,
                        png_compress_level=settings.png_compress_level,
                    )
                ).decode("ascii")
                for face in faces
            ]

        encoded = await run_in_threadpool(encode_all)
        response.headers[HEADER_MODEL_NAME] = model.name
        response.headers[HEADER_MODEL_VERSION] = model.version
        response.headers[HEADER_SEEDS] = ",".join(map(str, seeds))
        response.headers[HEADER_TRUNCATION] = _psi_header(request.truncation)
        if attributes:
            response.headers[HEADER_ATTRIBUTES] = attributes_header(attributes)
        response.headers["Cache-Control"] = "no-store"
        images = [
            GeneratedFace(
                seed=seed,
                truncation=request.truncation,
                size=request.size,
                format=request.format,
                media_type=MEDIA_TYPES[request.format],
                data_base64=data,
            )
            for seed, data in zip(seeds, encoded, strict=True)
        ]
        return GenerateBatchResponse(model_name=model.name, model_version=model.version, images=images)

    @app.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "No model loaded"}},
        summary="A model is loaded",
    )  # fmt: skip
    async def readyz() -> Any:
        model = holder.current
        if model is None:
            body = Readiness(
                status="not ready", model_name=holder.model_name, alias=holder.alias,
                reason=holder.stats.last_error or "no model loaded yet",
            )  # fmt: skip
            return JSONResponse(status_code=503, content=body.model_dump())
        return Readiness(status="ready", model_name=model.name, alias=holder.alias, model_version=model.version)

    @app.get(
        "/metrics", response_class=Response, summary="Prometheus metrics",
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    )  # fmt: skip
    async def prometheus_metrics() -> Response:
        return Response(content=generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/feedback", response_model=FeedbackOut, status_code=201, responses=BODY_ERRORS, summary="Rate a face")
    def feedback(body: FeedbackIn, request: Request) -> FeedbackOut:
        store: FeedbackStore = request.app.state.feedback
        record = store.add(
            model_name=settings.model_name, model_version=body.model_version, seed=body.seed,
            truncation=body.truncation, attributes=body.attributes.requested() if body.attributes else None,
            rating=body.rating, comment=body.comment,
        )  # fmt: skip
        metrics.feedback.labels(str(body.rating)).inc()
        return FeedbackOut(
            id=record.id, model_name=record.model_name, model_version=record.model_version, seed=record.seed,
            truncation=record.truncation, attributes=record.attributes, rating=record.rating,
            created_at=record.created_at,
        )  # fmt: skip

    @app.post(
        "/admin/reload",
        response_model=ReloadOut,
        dependencies=[Depends(require_admin)],
        responses={
            401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
            403: {"model": ErrorOut, "description": "Admin endpoints disabled (no token configured)"},
            502: {
                "model": ReloadOut,
                "description": "The registry or the new version failed; the old model still serves",
            },
        },
        summary="Re-resolve the alias now and swap in its version",
    )
    async def admin_reload() -> Any:
        result = await run_in_threadpool(holder.refresh, "admin")
        body = ReloadOut(
            changed=result.changed, previous_version=result.previous_version, model_version=result.current_version,
            alias_version=result.alias_version, error=result.error,
        )  # fmt: skip
        if result.error:
            return JSONResponse(status_code=502, content=body.model_dump())
        return body

    return app
