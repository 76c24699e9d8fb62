"""What each failure answers, in one place: the exception → HTTP status mapping and the error bodies OpenAPI shows.

- a malformed request: 422 with pydantic's per-field ``detail`` plus a one-line ``message`` (a value outside the
  attribute vocabulary names the allowed values);
- no model loaded yet (:class:`ModelNotReady`) or no face can be marked (:class:`MarkingUnavailable`: signing
  credentials missing or expired while marking is on): 503 with the reason;
- well-formed attributes the served version is not conditioned on (:class:`AttributesNotSupported`): 409;
- a body that is not JSON at all: 400, answered by Starlette before validation runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from facegen.provenance.marking import MarkingUnavailable
from facegen.serve.inference import AttributesNotSupported, ModelNotReady


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

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "No model loaded yet, or no face can be marked (signing credentials)"}
}


def validation_message(errors: list[dict[str, Any]]) -> str:
    """``size: Value error, size must be one of …; seed: …``: every invalid field on one line."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",)) or "request"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(error.errors())
    return JSONResponse(status_code=422, content={"detail": errors, "message": validation_message(errors)})


async def model_not_ready(request: Request, error: ModelNotReady) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(error)})


async def marking_unavailable(request: Request, error: MarkingUnavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": f"faces cannot be marked as synthetic: {error}"})


async def attributes_not_supported(request: Request, error: AttributesNotSupported) -> JSONResponse:
    # A conflict with the current state (the same request succeeds once a version conditioned on them is champion),
    # not a malformed request.
    return JSONResponse(status_code=409, content={"detail": str(error)})


#: For ``FastAPI(exception_handlers=...)``.
EXCEPTION_HANDLERS: dict[Any, Any] = {
    RequestValidationError: invalid_request,
    ModelNotReady: model_not_ready,
    MarkingUnavailable: marking_unavailable,
    AttributesNotSupported: attributes_not_supported,
}
