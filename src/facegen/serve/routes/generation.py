"""``GET /generate`` (one face as image bytes) and ``POST /generate`` (a bounded batch as JSON, base64 images).

Both take attributes for conditional models and answer with the headers that regenerate each face exactly
(:mod:`facegen.serve.feedback_export`). Every face is marked (:mod:`facegen.provenance.marking`): watermarked at 256²
and up, C2PA-signed with the same version, seed, truncation and attributes; with marking on and no usable signing
credentials both routes answer 503 before rendering. The router is built per app: its sizes, bounds and defaults are
settings.
"""

# No `from __future__ import annotations`: FastAPI must see the request model built inside router().
import base64
import secrets
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from facegen.provenance.c2pa_manifest import FaceProvenance
from facegen.provenance.marking import FaceMarker, MarkingUnavailable
from facegen.serve.dependencies import MarkerDep, RendererDep, SettingsDep
from facegen.serve.errors import ATTRIBUTE_CONFLICT, BODY_ERRORS, NOT_READY
from facegen.serve.imaging import MEDIA_TYPES
from facegen.serve.inference import MAX_SEED
from facegen.serve.loading import LoadedModel
from facegen.serve.schemas import (
    HEADER_ATTRIBUTES,
    HEADER_MODEL_NAME,
    HEADER_MODEL_VERSION,
    HEADER_SEED,
    HEADER_SEEDS,
    HEADER_SIZE,
    HEADER_TRUNCATION,
    AgeBinQuery,
    Attributes,
    EthnicityQuery,
    GenderQuery,
    GenerateBatchResponse,
    GeneratedFace,
    ImageFormatField,
    batch_request_model,
    size_query,
)
from facegen.serve.settings import ServeSettings

FACE_RESPONSES: dict[int | str, dict[str, Any]] = {
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
    **NOT_READY,
}


def attributes_header(attributes: dict[str, str]) -> str:
    """``gender=female,age_bin=20-29`` (sorted by name): the requested attributes of a conditional face."""
    return ",".join(f"{key}={value}" for key, value in sorted(attributes.items()))


def face_headers(model: LoadedModel, truncation: float, attributes: dict[str, str]) -> dict[str, str]:
    """The headers every face response carries: with the seed(s) they regenerate the face exactly."""
    headers = {
        HEADER_MODEL_NAME: model.name,
        HEADER_MODEL_VERSION: model.version,
        HEADER_TRUNCATION: repr(float(truncation)),
        "Cache-Control": "no-store",  # the same URL gives another face once the champion moves
    }
    if attributes:
        headers[HEADER_ATTRIBUTES] = attributes_header(attributes)
    return headers


def random_seed() -> int:
    return secrets.randbelow(2**32)


def check_marking(marker: FaceMarker) -> None:
    """Refuse before rendering when no face could leave marked (the encode checks again, for expiry in between)."""
    problem = marker.problem()
    if problem is not None:
        raise MarkingUnavailable(problem)


def encode_faces(
    settings: ServeSettings,
    marker: FaceMarker,
    model: LoadedModel,
    faces: np.ndarray,
    seeds: list[int],
    truncation: float,
    attributes: dict[str, str],
    size: int,
    fmt: str,
) -> list[bytes]:
    """Each face marked with what made it."""
    return [
        marker.encode(
            face,
            FaceProvenance(model.name, model.version, model.run_id, seed, truncation, attributes),
            size=size,
            fmt=fmt,
            jpeg_quality=settings.jpeg_quality,
            png_compress_level=settings.png_compress_level,
        )
        for face, seed in zip(faces, seeds, strict=True)
    ]


def encode_faces_base64(*args: Any) -> list[str]:
    """As :func:`encode_faces`, base64 included: in the worker thread, not on the event loop, for large batches."""
    return [base64.b64encode(data).decode("ascii") for data in encode_faces(*args)]


def router(settings: ServeSettings) -> APIRouter:
    """The two ``/generate`` routes with this app's sizes, batch bound and defaults in their signatures (what they
    serve with comes from the app's state, as for every route)."""
    Size = size_query(settings.allowed_sizes)
    default_size, default_truncation, max_batch = settings.default_size, settings.default_truncation, settings.max_batch
    GenerateBatchRequest = batch_request_model(settings)
    routes = APIRouter()

    @routes.get("/generate", response_class=Response, responses=FACE_RESPONSES, summary="One face")
    async def generate_one(
        settings: SettingsDep,
        renderer: RendererDep,
        marker: MarkerDep,
        seed: Annotated[int | None, Query(ge=0, le=MAX_SEED, description="Latent seed; random when omitted")] = None,
        truncation: Annotated[
            float, Query(ge=0.0, le=1.0, allow_inf_nan=False, description="Truncation psi in [0, 1]")
        ] = default_truncation,
        size: Size = default_size,  # type: ignore[valid-type]
        format: Annotated[ImageFormatField, Query(description="Image encoding")] = "jpeg",
        gender: GenderQuery = None,
        age_bin: AgeBinQuery = None,
        ethnicity: EthnicityQuery = None,
    ) -> Response:
        seed = random_seed() if seed is None else seed
        attributes = Attributes(gender=gender, age_bin=age_bin, ethnicity=ethnicity).requested()
        check_marking(marker)
        model, faces = await renderer.render([seed], truncation, attributes)
        [data] = await run_in_threadpool(
            encode_faces, settings, marker, model, faces, [seed], truncation, attributes, size, format
        )
        headers = {**face_headers(model, truncation, attributes), HEADER_SEED: str(seed), HEADER_SIZE: str(size)}
        return Response(content=data, media_type=MEDIA_TYPES[format], headers=headers)

    @routes.post(
        "/generate",
        response_model=GenerateBatchResponse,
        responses={**BODY_ERRORS, **ATTRIBUTE_CONFLICT, **NOT_READY},
        summary=f"A batch of up to {max_batch} faces",
    )
    async def generate_batch(
        request: GenerateBatchRequest,
        response: Response,
        settings: SettingsDep,
        renderer: RendererDep,
        marker: MarkerDep,
    ) -> GenerateBatchResponse:
        seeds = request.seeds or [random_seed() for _ in range(request.count or 1)]
        attributes = request.attributes.requested() if request.attributes else {}
        check_marking(marker)
        model, faces = await renderer.render(seeds, request.truncation, attributes)
        encoded = await run_in_threadpool(
            encode_faces_base64,
            settings,
            marker,
            model,
            faces,
            seeds,
            request.truncation,
            attributes,
            request.size,
            request.format,
        )
        response.headers.update(face_headers(model, request.truncation, attributes))
        response.headers[HEADER_SEEDS] = ",".join(map(str, seeds))
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

    return routes
