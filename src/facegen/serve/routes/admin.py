"""``POST /admin/reload``: re-resolve the alias now instead of at the next poll, behind the admin bearer token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from facegen.serve.dependencies import HolderDep
from facegen.serve.errors import ErrorOut
from facegen.serve.schemas import ReloadOut

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorOut, "description": "Admin endpoints disabled (no token configured)"},
    502: {"model": ReloadOut, "description": "The registry or the new version failed; the old model still serves"},
}


async def admin_reload(holder: HolderDep) -> Any:
    result = await run_in_threadpool(holder.refresh, "admin")
    body = ReloadOut(
        changed=result.changed,
        previous_version=result.previous_version,
        model_version=result.current_version,
        alias_version=result.alias_version,
        error=result.error,
    )
    if result.error:
        return JSONResponse(status_code=502, content=body.model_dump())
    return body


def router(require_admin: Callable[..., None]) -> APIRouter:
    """The admin routes, each behind ``require_admin`` (:func:`facegen.serve.auth.admin_guard`)."""
    routes = APIRouter()
    routes.add_api_route(
        "/admin/reload",
        admin_reload,
        methods=["POST"],
        response_model=ReloadOut,
        dependencies=[Depends(require_admin)],
        responses=RESPONSES,
        summary="Re-resolve the alias now and swap in its version",
    )
    return routes
