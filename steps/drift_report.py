"""drift_report: evidently data drift between this run's manifest and the previous successful run's.

The reference is found through ZenML's artifact history: the newest *completed* run of the same pipeline (other than
this one) that produced a ``tagged_manifest`` artifact. First run: no reference, a note, no failure.
"""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ExecutionStatus
from zenml.logger import get_logger

from facegen.validation.drift import drift_report as run_drift_report

logger = get_logger(__name__)


def previous_manifest(artifact: str = "tagged_manifest", step_name: str = "tag_attributes") -> Optional[pd.DataFrame]:
    """The ``artifact`` output of ``step_name`` in the newest completed earlier run of this pipeline, if any."""
    context = get_step_context()
    current = context.pipeline_run
    runs = Client().list_pipeline_runs(
        pipeline_id=current.pipeline.id, status=ExecutionStatus.COMPLETED, sort_by="desc:created", size=20
    )
    for run in runs.items:
        if run.id == current.id:
            continue
        step_run = run.steps.get(step_name)
        if step_run is None or artifact not in step_run.outputs:
            continue
        logger.info("drift reference: run %s (%s)", run.name, run.created)
        return step_run.outputs[artifact][0].load()
    return None


@step(enable_cache=False)
def drift_report(
    tagged_manifest: pd.DataFrame,
    drift_share: float = 0.5,
    fail_on_drift: bool = False,
) -> Annotated[Path, "drift_report"]:
    """Fails the run when ``fail_on_drift`` and at least ``drift_share`` of the compared columns drifted."""
    reference = previous_manifest()
    out = Path(tempfile.mkdtemp(prefix="facegen-drift-"))
    outcome = run_drift_report(tagged_manifest, reference, out, drift_share=drift_share)
    mlflow.log_artifacts(str(out), artifact_path="validation/drift")
    if outcome.has_reference:
        mlflow.log_metrics({"drift_share": outcome.drifted_share, "drift_columns": float(outcome.drifted_count)})
    log_metadata(
        metadata={
            "has_reference": outcome.has_reference,
            "drifted_share": outcome.drifted_share,
            "columns": outcome.columns,
            "note": outcome.note or "",
            "html": str(outcome.html_path),
        }
    )
    if outcome.has_reference and fail_on_drift and outcome.drifted_share >= drift_share and outcome.drifted_count:
        raise ValueError(
            f"data drift: {outcome.drifted_count} columns ({outcome.drifted_share:.0%}) drifted "
            f"against the previous run, limit {drift_share:.0%}; report: {outcome.html_path}"
        )
    return out
