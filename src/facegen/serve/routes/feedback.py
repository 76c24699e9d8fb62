"""``POST /feedback``: a rating of one face, stored durably (:class:`facegen.serve.feedback.FeedbackStore`) and
counted in ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter

from facegen.serve.dependencies import FeedbackDep, MetricsDep, SettingsDep
from facegen.serve.errors import BODY_ERRORS
from facegen.serve.schemas import FeedbackIn, FeedbackOut

router = APIRouter()


@router.post("/feedback", response_model=FeedbackOut, status_code=201, responses=BODY_ERRORS, summary="Rate a face")
def feedback(body: FeedbackIn, store: FeedbackDep, settings: SettingsDep, metrics: MetricsDep) -> FeedbackOut:
    # A plain def: FastAPI runs it in its threadpool, so the SQLite write does not block the event loop.
    record = store.add(
        model_name=settings.model_name,
        model_version=body.model_version,
        seed=body.seed,
        truncation=body.truncation,
        attributes=body.attributes.requested() if body.attributes else None,
        rating=body.rating,
        comment=body.comment,
    )
    metrics.feedback.labels(str(body.rating)).inc()
    return FeedbackOut.model_validate(record, from_attributes=True)
