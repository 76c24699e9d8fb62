"""The face-generator service: FastAPI app over the champion generator (``facegen serve`` runs it with uvicorn).

Endpoints (OpenAPI at ``/docs`` and ``/openapi.json``), one module per concern under :mod:`facegen.serve.routes`:
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
``message`` (:mod:`facegen.serve.errors`); sizes come from ``allowed_sizes`` and batches are at most ``max_batch``
faces.

:func:`create_app` wires the pieces; the routes reach the model holder, renderer, metrics, settings and feedback
store through ``app.state`` (:mod:`facegen.serve.dependencies`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from facegen import __version__ as facegen_version
from facegen.provenance.marking import FaceMarker
from facegen.serve.auth import admin_guard
from facegen.serve.errors import EXCEPTION_HANDLERS
from facegen.serve.feedback import FeedbackStore
from facegen.serve.inference import BatchingRenderer
from facegen.serve.metrics import MetricsMiddleware, ServiceMetrics
from facegen.serve.model_holder import ModelHolder
from facegen.serve.routes import admin, feedback, generation, operations
from facegen.serve.schemas import HEADER_MODEL_VERSION, HEADER_SEED, HEADER_TRUNCATION
from facegen.serve.settings import ServeSettings

ENDPOINTS = ("/generate", "/healthz", "/readyz", "/metrics", "/feedback", "/admin/reload", "/docs", "/openapi.json")


def create_app(settings: ServeSettings, holder: ModelHolder | None = None) -> FastAPI:
    """The service app. ``holder`` defaults to one built from ``settings``; the app starts and stops it."""
    holder = holder or ModelHolder.from_settings(settings)
    metrics = ServiceMetrics(holder)
    app = FastAPI(
        title="facegen face generator",
        version=facegen_version,
        description=(
            f"Faces from `{settings.model_uri()}`. Headers `{HEADER_MODEL_VERSION}`, `{HEADER_SEED}` and "
            f"`{HEADER_TRUNCATION}` identify every face; `POST /feedback` rates it."
        ),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.marker = FaceMarker(settings.provenance)
    app.state.renderer = BatchingRenderer(
        holder, max_forward_batch=settings.max_forward_batch, on_batch=metrics.observe_batch
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=ENDPOINTS)
    app.include_router(generation.router(settings))
    app.include_router(operations.router)
    app.include_router(feedback.router)
    app.include_router(admin.router(admin_guard(settings.admin_token(), settings.admin_token_env)))
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the feedback store and load the model when the server starts; stop all of it when the server stops."""
    settings: ServeSettings = app.state.settings
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    store = await run_in_threadpool(FeedbackStore, settings.resolved_feedback_db())
    app.state.feedback = store
    await run_in_threadpool(app.state.holder.start)
    app.state.renderer.start()
    try:
        yield
    finally:
        app.state.renderer.stop()
        await run_in_threadpool(app.state.holder.stop)
        store.close()
