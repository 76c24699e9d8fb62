"""balance: a sampling plan that moves joint attribute cells (e.g. ethnicity × gender) and age bins to a target
distribution; the report (PNG bar charts, table, cost) goes to MLflow."""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.balance import plan_joint_balance
from facegen.data.balance_report import cost_lines, write_balance_report
from steps.materializers import ManifestMaterializer


@step(output_materializers={"sampling_plan": ManifestMaterializer})
def balance(
    tagged_manifest: pd.DataFrame,
    cells: Optional[list[str]] = None,
    also: Optional[list[str]] = None,
    targets: Optional[dict[str, Any]] = None,
    strategy: Optional[str] = None,
    oversample_cap: Optional[float] = None,
    max_weight_ratio: Optional[float] = None,
    target_size: Optional[int] = None,
    seed: int = 0,
) -> Tuple[Annotated[pd.DataFrame, "sampling_plan"], Annotated[dict, "balance_shares"]]:
    """``cells`` / ``also`` are balanced jointly toward ``targets`` (uniform unless given, e.g.
    ``{gender: {female: 0.5, male: 0.5}}``); strategies downsample | oversample | weights. A knob left null takes
    facegen.data.balance.plan_joint_balance's default.

    ``balance_shares`` (attribute → group → before / after / target share) is what fairness of the generated faces
    is measured against."""
    kept = tagged_manifest[tagged_manifest["status"] == "kept"]
    knobs = {
        "cells": cells,
        "also": also,
        "targets": targets,
        "strategy": strategy,
        "oversample_cap": oversample_cap,
        "max_weight_ratio": max_weight_ratio,
        "target_size": target_size,
    }
    plan, report = plan_joint_balance(kept, seed=seed, **{k: v for k, v in knobs.items() if v is not None})
    out = Path(tempfile.mkdtemp(prefix="facegen-balance-"))
    write_balance_report(report, out)
    mlflow.log_artifacts(str(out), artifact_path="data/balance")
    mlflow.log_dict(report, "data/balance/balance_report.json")
    mlflow.log_metrics(
        {
            "balance_images_dropped": float(report["images_dropped"]),
            "balance_images_repeated": float(report["images_repeated"]),
            "balance_max_repeat": float(report["max_repeat"]),
        }
    )
    mlflow.log_params(
        {
            "balance_strategy": report["strategy"],
            "balanced": report["balanced"],
            "balance_cells": " x ".join(report["cells"]),
        }
    )
    mlflow.log_metrics({"data_planned_samples": float(len(plan))})
    log_metadata(
        metadata={"balance_report": {**{k: v for k, v in report.items() if k != "shares"}, "cost": cost_lines(report)}}
    )
    return plan, report.get("shares", {})
