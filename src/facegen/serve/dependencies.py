"""What the routes take from the running app, as FastAPI dependencies over ``app.state``.

:func:`facegen.serve.app.create_app` sets ``settings``, ``holder``, ``renderer``, ``metrics`` and ``marker``; its
lifespan opens ``feedback``. The accessors are ``async`` so FastAPI calls them inline instead of sending each to its
threadpool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from facegen.provenance.marking import FaceMarker
from facegen.serve.feedback import FeedbackStore
from facegen.serve.inference import BatchingRenderer
from facegen.serve.metrics import ServiceMetrics
from facegen.serve.model_holder import ModelHolder
from facegen.serve.settings import ServeSettings


async def _settings(request: Request) -> ServeSettings:
    return request.app.state.settings


async def _holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def _renderer(request: Request) -> BatchingRenderer:
    return request.app.state.renderer


async def _metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def _feedback(request: Request) -> FeedbackStore:
    return request.app.state.feedback


async def _marker(request: Request) -> FaceMarker:
    return request.app.state.marker


SettingsDep = Annotated[ServeSettings, Depends(_settings)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
RendererDep = Annotated[BatchingRenderer, Depends(_renderer)]
MetricsDep = Annotated[ServiceMetrics, Depends(_metrics)]
FeedbackDep = Annotated[FeedbackStore, Depends(_feedback)]
MarkerDep = Annotated[FaceMarker, Depends(_marker)]
