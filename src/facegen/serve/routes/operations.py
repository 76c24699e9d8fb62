"""What operators and orchestrators poll: ``/healthz`` (the process is up), ``/readyz`` (a model is loaded) and
``/metrics`` (Prometheus).

A champion the gate rule refuses shows in ``/readyz``'s ``refused``: 200 while the previous version still serves,
503 when there is none. Faces that cannot be marked as synthetic (no usable signing certificate) are never served,
so ``/readyz`` is 503 with that reason too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from facegen.serve.dependencies import HolderDep, MarkerDep, MetricsDep
from facegen.serve.model_holder import ModelHolder
from facegen.serve.schemas import Health, Readiness, RefusedChampion

router = APIRouter()


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="A model is loaded",
    responses={
        503: {
            "model": Readiness,
            "description": "No model loaded (none yet, or the champion is refused), or faces cannot be marked",
        }
    },
)
async def readyz(holder: HolderDep, marker: MarkerDep) -> Any:
    model, refused, unmarkable = holder.current, _refused(holder), marker.problem()
    if model is None or unmarkable:
        reason = f"faces cannot be marked as synthetic: {unmarkable}" if unmarkable else holder.not_ready_reason()
        body = Readiness(
            status="not ready",
            model_name=holder.model_name,
            alias=holder.alias,
            reason=reason,
            refused=refused,
            model_version=model.version if model else None,
        )
        return JSONResponse(status_code=503, content=body.model_dump())
    return Readiness(
        status="ready", model_name=model.name, alias=holder.alias, model_version=model.version, refused=refused
    )


def _refused(holder: ModelHolder) -> RefusedChampion | None:
    refusal = holder.refused
    return RefusedChampion(version=refusal.version, reason=refusal.reason) if refusal else None


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(metrics: MetricsDep) -> Response:
    return Response(content=generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
