"""balance: a sampling plan that equalises the groups of one demographic attribute (when labels exist)."""

from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.balance import plan_balance
from steps.materializers import ManifestMaterializer


@step(output_materializers=ManifestMaterializer)
def balance(
    screened_manifest: pd.DataFrame,
    attribute: str = "ethnicity",
    strategy: str = "downsample",
    oversample_cap: float = 3.0,
    seed: int = 0,
) -> Annotated[pd.DataFrame, "sampling_plan"]:
    """Plans which kept images (and how often) the dataset draws; the report records before/after counts."""
    kept = screened_manifest[screened_manifest["status"] == "kept"]
    plan, report = plan_balance(kept, attribute=attribute, strategy=strategy, oversample_cap=oversample_cap, seed=seed)
    mlflow.log_dict(report, "data/balance_report.json")
    mlflow.log_params({"balance_attribute": attribute, "balance_strategy": strategy, "balanced": report["balanced"]})
    mlflow.log_metrics({"data_planned_samples": float(len(plan))})
    log_metadata(metadata={"balance_report": report})
    return plan
