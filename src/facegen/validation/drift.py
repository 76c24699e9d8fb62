"""Data drift between this run's manifest and a reference one (the previous successful run's), with evidently.

Compared over kept rows: resolution (width, height), blur score, face score and the attribute shares (gender,
age_bin, ethnicity, as resolved by tagging: labels, else confident predictions). evidently picks each column's test
by type and size (K-S / chi-square on small samples, Wasserstein / Jensen-Shannon distances on large ones); the
report's ``share`` is the fraction of compared columns that drifted. The HTML is evidently's own, self-contained.
"""

from __future__ import annotations

import html
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

NUMERICAL: tuple[str, ...] = ("width", "height", "blur_score", "face_score")
CATEGORICAL: tuple[str, ...] = ("gender", "age_bin", "ethnicity")


@dataclass
class DriftOutcome:
    has_reference: bool
    drifted_share: float = 0.0
    drifted_count: int = 0
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    html_path: Path | None = None
    json_path: Path | None = None
    note: str | None = None


def drift_frame(manifest: pd.DataFrame) -> pd.DataFrame:
    """The compared columns of the kept rows; categorical ones as strings (``attr_*`` when tagged)."""
    kept = manifest[manifest["status"].eq("kept")] if "status" in manifest else manifest
    frame = pd.DataFrame(index=range(len(kept)))
    for column in NUMERICAL:
        if column in kept and kept[column].notna().any():
            frame[column] = pd.to_numeric(kept[column], errors="coerce").astype(float).to_numpy()
    for name in CATEGORICAL:
        for column in (f"attr_{name}", name):
            if column in kept:
                frame[name] = kept[column].astype(object).where(kept[column].notna(), "unknown").astype(str).to_numpy()
                break
    return frame


def _write_note(out_dir: Path, note: str) -> Path:
    path = out_dir / "drift_report.html"
    path.write_text(
        f"<!doctype html><meta charset=utf-8><title>facegen drift</title><h1>Data drift</h1><p>{html.escape(note)}</p>"
    )
    return path


def drift_report(
    current: pd.DataFrame, reference: pd.DataFrame | None, out_dir: Path, *, drift_share: float = 0.5
) -> DriftOutcome:
    """Write ``drift_report.html`` and ``drift_report.json`` into ``out_dir``; without a reference, a note only."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if reference is None:
        note = "no previous successful run with a manifest: nothing to compare against yet (first run)"
        return DriftOutcome(False, html_path=_write_note(out_dir, note), note=note)

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cur, ref = drift_frame(current), drift_frame(reference)
    shared = [c for c in cur.columns if c in ref.columns and cur[c].notna().any() and ref[c].notna().any()]
    if not shared or cur.empty or ref.empty:
        note = "no comparable columns or no kept rows in one of the manifests"
        return DriftOutcome(True, html_path=_write_note(out_dir, note), note=note)
    definition = DataDefinition(
        numerical_columns=[c for c in shared if c in NUMERICAL],
        categorical_columns=[c for c in shared if c in CATEGORICAL],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(columns=shared, drift_share=drift_share)]).run(
            current_data=Dataset.from_pandas(cur[shared], data_definition=definition),
            reference_data=Dataset.from_pandas(ref[shared], data_definition=definition),
        )
    html_path, json_path = out_dir / "drift_report.html", out_dir / "drift_report.json"
    snapshot.save_html(str(html_path))
    result = snapshot.dict()
    json_path.write_text(json.dumps(result, indent=2, default=str))
    outcome = DriftOutcome(True, html_path=html_path, json_path=json_path)
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("DriftedColumnsCount"):
            outcome.drifted_share = float(metric["value"]["share"])
            outcome.drifted_count = int(metric["value"]["count"])
        elif config.get("type", "").endswith("ValueDrift"):
            name = metric["metric_name"]
            method = name.split("method=")[1].split(",")[0] if "method=" in name else ""
            value = float(metric["value"])
            threshold = float(config.get("threshold", 0.05))
            drifted = value < threshold if "p_value" in method else value >= threshold
            outcome.columns[config["column"]] = {
                "method": method,
                "score": value,
                "threshold": threshold,
                "drifted": drifted,
            }
    return outcome
