"""validate_data: a great-expectations suite over the tagged manifest; data docs + a self-contained summary."""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger

from facegen.data.quality import FeedbackThresholds
from facegen.validation.expectations import ManifestExpectations, validate_manifest

logger = get_logger(__name__)


@step
def validate_data(
    tagged_manifest: pd.DataFrame,
    min_side: int = 64,
    max_side: int = 20_000,
    min_blur_score: float = 7.0,
    min_face_score: Optional[float] = None,
    min_per_group: int = 1,
    group_attributes: Optional[list[str]] = None,
    feedback: Optional[dict] = None,
    on_failure: str = "warn",
) -> Annotated[Path, "validation_report"]:
    """``on_failure``: ``fail`` stops the run on any unmet expectation, ``warn`` logs it and goes on.

    ``group_attributes`` (default gender, age_bin, ethnicity): whose groups must each keep ``min_per_group`` faces.
    ``feedback`` (``{min_side, blur_threshold}``, default the quality filter's 32 px limits): what kept generated
    feedback faces are held to instead of ``min_side`` / ``min_blur_score``.
    """
    if on_failure not in ("fail", "warn"):
        raise ValueError(f"on_failure must be 'fail' or 'warn', got {on_failure!r}")
    groups = tuple(group_attributes or ("gender", "age_bin", "ethnicity"))
    settings = ManifestExpectations(min_side=min_side, max_side=max_side, min_blur_score=min_blur_score,
                                    min_face_score=min_face_score, min_per_group=min_per_group,
                                    group_attributes=groups,
                                    feedback=FeedbackThresholds(**(feedback or {})))  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="facegen-validation-"))
    outcome = validate_manifest(tagged_manifest, out, settings)
    mlflow.log_artifacts(str(out), artifact_path="validation")
    mlflow.log_metrics({"validation_success": float(outcome.success),
                        "validation_unsuccessful": float(outcome.statistics["unsuccessful"])})  # fmt: skip
    failures = [f"{r['batch']}: {r['expectation']}({r['column'] or ''}) {r['result']}" for r in outcome.failures()]
    log_metadata(metadata={"success": outcome.success, **outcome.statistics, "failures": failures[:20],
                           "summary_html": str(outcome.summary_html),
                           "data_docs": str(outcome.docs_index)})  # fmt: skip
    if failures:
        message = f"{len(failures)} data expectation(s) not met (report: {outcome.summary_html}):\n" + "\n".join(
            failures[:20]
        )
        if on_failure == "fail":
            raise ValueError(message)
        logger.warning(message)
    return out
