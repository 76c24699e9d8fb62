"""balance: a sampling plan that moves joint attribute cells (e.g. ethnicity × gender) and age bins to a target
distribution; the report (PNG bar charts, table, cost) goes to MLflow."""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.balance import plan_balance, plan_joint_balance
from facegen.data.balance_report import cost_lines, write_balance_report
from steps.materializers import ManifestMaterializer


@step(output_materializers={"sampling_plan": ManifestMaterializer})
def balance(
    tagged_manifest: pd.DataFrame,
    cells: Optional[list[str]] = None,
    also: Optional[list[str]] = None,
    targets: Optional[dict[str, Any]] = None,
    strategy: str = "oversample",
    oversample_cap: float = 3.0,
    max_weight_ratio: float = 3.0,
    target_size: Optional[int] = None,
    attribute: Optional[str] = None,
    seed: int = 0,
) -> Tuple[Annotated[pd.DataFrame, "sampling_plan"], Annotated[dict, "balance_shares"]]:
    """``cells`` / ``also`` (default ethnicity × gender, and age_bin) are balanced jointly toward ``targets``
    (uniform unless given, e.g. ``{gender: {female: 0.5, male: 0.5}}``). ``attribute`` (legacy) balances one
    attribute's groups only, with plan_balance. Strategies: downsample | oversample | weights.

    ``balance_shares`` (attribute → group → before / after / target share) is what fairness of the generated faces
    is measured against; empty for the legacy single-attribute plan, which has no targets."""
    kept = tagged_manifest[tagged_manifest["status"] == "kept"]
    if attribute is not None:
        label_column = f"attr_{attribute}" if f"attr_{attribute}" in kept else None
        plan, report = plan_balance(kept, attribute=attribute, strategy=strategy, oversample_cap=oversample_cap,
                                    seed=seed, label_column=label_column)  # fmt: skip
        mlflow.log_dict(report, "data/balance_report.json")
    else:
        plan, report = plan_joint_balance(
            kept, cells=tuple(cells if cells is not None else ("ethnicity", "gender")),
            also=tuple(also if also is not None else ("age_bin",)), targets=targets, strategy=strategy,
            oversample_cap=oversample_cap, max_weight_ratio=max_weight_ratio, target_size=target_size, seed=seed,
        )  # fmt: skip
        out = Path(tempfile.mkdtemp(prefix="facegen-balance-"))
        write_balance_report(report, out)
        mlflow.log_artifacts(str(out), artifact_path="data/balance")
        mlflow.log_dict(report, "data/balance/balance_report.json")
        mlflow.log_metrics({"balance_images_dropped": float(report["images_dropped"]),
                            "balance_images_repeated": float(report["images_repeated"]),
                            "balance_max_repeat": float(report["max_repeat"])})  # fmt: skip
    mlflow.log_params({"balance_strategy": strategy, "balanced": report["balanced"],
                       "balance_cells": attribute or " x ".join(report.get("cells", []))})  # fmt: skip
    mlflow.log_metrics({"data_planned_samples": float(len(plan))})
    summary = {k: v for k, v in report.items() if k != "shares"}
    if attribute is None:
        summary["cost"] = cost_lines(report)
    log_metadata(metadata={"balance_report": summary})
    return plan, report.get("shares", {})
