"""validate_data: a great-expectations suite over the tagged manifest; data docs + a self-contained summary."""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger

from facegen.data.quality import QualityConfig
from facegen.validation.expectations import ManifestExpectations, validate_manifest

logger = get_logger(__name__)


@step
def validate_data(
    tagged_manifest: pd.DataFrame,
    quality_settings: dict,
    max_side: Optional[int] = None,
    min_per_group: Optional[int] = None,
    group_attributes: Optional[list[str]] = None,
    on_failure: str = "warn",
) -> Annotated[Path, "validation_report"]:
    """``on_failure``: ``fail`` stops the run on any unmet expectation, ``warn`` logs it and goes on.

    ``quality_settings``: quality_filter's output, so kept photos and kept feedback faces are held to the very
    size, blur and face-score limits that screened them. ``group_attributes``: whose groups must each keep
    ``min_per_group`` faces. A knob left null takes facegen.validation.expectations.ManifestExpectations' default.
    """
    if on_failure not in ("fail", "warn"):
        raise ValueError(f"on_failure must be 'fail' or 'warn', got {on_failure!r}")
    knobs = {
        "max_side": max_side,
        "min_per_group": min_per_group,
        "group_attributes": tuple(group_attributes) if group_attributes is not None else None,
    }
    settings = ManifestExpectations(
        quality=QualityConfig.from_dict(quality_settings), **{k: v for k, v in knobs.items() if v is not None}
    )
    out = Path(tempfile.mkdtemp(prefix="facegen-validation-"))
    outcome = validate_manifest(tagged_manifest, out, settings)
    mlflow.log_artifacts(str(out), artifact_path="validation")
    mlflow.log_metrics(
        {
            "validation_success": float(outcome.success),
            "validation_unsuccessful": float(outcome.statistics["unsuccessful"]),
        }
    )
    failures = [f"{r['batch']}: {r['expectation']}({r['column'] or ''}) {r['result']}" for r in outcome.failures()]
    log_metadata(
        metadata={
            "success": outcome.success,
            **outcome.statistics,
            "failures": failures[:20],
            "summary_html": str(outcome.summary_html),
            "data_docs": str(outcome.docs_index),
        }
    )
    if failures:
        message = f"{len(failures)} data expectation(s) not met (report: {outcome.summary_html}):\n" + "\n".join(
            failures[:20]
        )
        if on_failure == "fail":
            raise ValueError(message)
        logger.warning(message)
    return out
