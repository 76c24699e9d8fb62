"""A great-expectations 1.x suite over the manifest, built in code on an ephemeral context (ZenML's GE integration
pins GE < 1.0, so it is called directly).

Three batches, one checkpoint:

- ``manifest`` (every row): uri unique and present, status in {kept, quarantined}, reason from the known codes,
  column types;
- ``kept`` (kept rows): sha256 well-formed and unique, width / height / blur score / face score within their
  ranges, attribute values from the shared vocabulary (:mod:`facegen.attributes`);
- ``groups`` (one row per attribute value among kept rows): at least ``min_per_group`` images per group.

GE's data docs (HTML) are written under ``out_dir/data_docs``; they load Bootstrap, jQuery and Vega from CDNs, so
offline they render unstyled. ``out_dir/summary.html`` is a small self-contained page with the same verdicts.
"""

from __future__ import annotations

import html
import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.data.manifest import FEEDBACK_ORIGIN
from facegen.data.quality import QUARANTINE_REASONS, QualityConfig


@dataclass(frozen=True)
class ManifestExpectations:
    """Thresholds of the suite (``validate_data.parameters`` in configs). Size, sharpness and face score are the
    quality filter's own (``quality``: the config that screened the manifest), never a second copy."""

    quality: QualityConfig = field(default_factory=QualityConfig)  # min_side, blur_threshold, face check, feedback
    max_side: int = 20_000
    min_per_group: int = 1
    group_attributes: tuple[str, ...] = ("gender", "age_bin", "ethnicity")

    @property
    def min_face_score(self) -> float | None:
        """The face check's threshold; None (not checked) when the filter ran without one."""
        return None if self.quality.face_check is None else self.quality.face_check.min_face_score


@dataclass
class ValidationOutcome:
    success: bool
    statistics: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    docs_index: Path | None = None
    summary_html: Path | None = None

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"]]


def _attribute_column(kept: pd.DataFrame, name: str) -> str | None:
    for column in (f"attr_{name}", name):
        if column in kept:
            return column
    return None


def group_counts(kept: pd.DataFrame, attributes: tuple[str, ...]) -> pd.DataFrame:
    """One row per attribute value: how many kept images have it (zeros included)."""
    rows = []
    for name in attributes:
        column = _attribute_column(kept, name)
        counts = kept[column].value_counts() if column else pd.Series(dtype=int)
        rows.extend(
            {"attribute": name, "group": value, "count": int(counts.get(value, 0))} for value in ATTRIBUTE_VALUES[name]
        )
    return pd.DataFrame(rows, columns=["attribute", "group", "count"])


def _size_and_sharpness(E: Any, min_side: int, max_side: int, min_blur: float) -> list:
    return [
        E.ExpectColumnValuesToBeBetween(column="width", min_value=min_side, max_value=max_side),
        E.ExpectColumnValuesToBeBetween(column="height", min_value=min_side, max_value=max_side),
        E.ExpectColumnValuesToBeBetween(column="blur_score", min_value=min_blur),
    ]


def _suites(gx: Any, manifest: pd.DataFrame, kept: pd.DataFrame, settings: ManifestExpectations, feedback: bool):
    """Suites per batch. Kept photos and kept generated feedback faces are checked against their own size and blur
    limits (the quality filter's), so a feedback face at the generator's 32 px is not held to the photos' 64 px."""
    E = gx.expectations
    whole = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToNotBeNull(column="uri"),
        E.ExpectColumnValuesToBeUnique(column="uri"),
        E.ExpectColumnValuesToBeInSet(column="status", value_set=["kept", "quarantined"]),
        E.ExpectColumnValuesToBeInSet(column="reason", value_set=list(QUARANTINE_REASONS)),
        E.ExpectColumnValuesToBeInTypeList(column="uri", type_list=["str"]),
        E.ExpectColumnValuesToBeOfType(column="blur_score", type_="float64"),
    ]
    for column in ("width", "height", "n_bytes"):  # nullable Int64 in the manifest; GE sees its int64 values
        whole.append(E.ExpectColumnValuesToBeOfType(column=column, type_="int64"))
    kept_suite = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToNotBeNull(column="sha256"),
        E.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
        E.ExpectColumnValuesToBeUnique(column="sha256"),
    ]
    if settings.min_face_score is not None and "face_score" in kept:
        kept_suite.append(E.ExpectColumnValuesToBeBetween(column="face_score", min_value=settings.min_face_score))
    for name in settings.group_attributes:
        column = _attribute_column(kept, name)
        if column:
            kept_suite.append(E.ExpectColumnValuesToBeInSet(column=column, value_set=list(ATTRIBUTE_VALUES[name])))
    groups = [
        E.ExpectColumnValuesToBeBetween(column="count", min_value=settings.min_per_group),
    ]
    quality = settings.quality
    suites = {
        "manifest": whole,
        "kept": kept_suite,
        "groups": groups,
        "kept_photos": _size_and_sharpness(E, quality.min_side, settings.max_side, quality.blur_threshold),
    }
    if feedback:
        limits = quality.feedback
        suites["kept_feedback"] = _size_and_sharpness(E, limits.min_side, settings.max_side, limits.blur_threshold)
    return suites


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        return str(value)


def validate_manifest(
    manifest: pd.DataFrame, out_dir: Path, settings: ManifestExpectations | None = None
) -> ValidationOutcome:
    """Run the suites; write data docs and ``summary.html`` + ``results.json`` into ``out_dir``."""
    import great_expectations as gx

    settings = settings or ManifestExpectations()
    out_dir = Path(out_dir)
    docs_dir = out_dir / "data_docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    frame = manifest.reset_index(drop=True)
    kept = frame[frame["status"].eq("kept")].reset_index(drop=True)
    is_feedback = kept["origin"].eq(FEEDBACK_ORIGIN) if "origin" in kept else pd.Series(False, index=kept.index)
    batches = {
        "manifest": frame,
        "kept": kept,
        "groups": group_counts(kept, settings.group_attributes),
        "kept_photos": kept[~is_feedback],
        "kept_feedback": kept[is_feedback],
    }

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = gx.get_context(mode="ephemeral")
        context.add_data_docs_site(
            site_name="facegen",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            },
        )
        source = context.data_sources.add_pandas("facegen")
        results: list[dict[str, Any]] = []
        success = True
        for name, expectations in _suites(gx, frame, kept, settings, feedback=bool(is_feedback.any())).items():
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
            suite = context.suites.add(gx.ExpectationSuite(name=f"facegen_{name}"))
            for expectation in expectations:
                suite.add_expectation(expectation)
            definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"facegen_{name}",
                    validation_definitions=[definition],
                    actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["facegen"])],
                    result_format="SUMMARY",
                )
            )
            run = checkpoint.run(batch_parameters={"dataframe": batches[name]})
            success = success and bool(run.success)
            for suite_result in run.run_results.values():
                for result in suite_result.results:
                    config = result.expectation_config
                    detail = {
                        k: result.result.get(k)
                        for k in ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")
                        if k in result.result
                    }
                    results.append(
                        {
                            "batch": name,
                            "expectation": config.type,
                            "column": config.kwargs.get("column"),
                            "kwargs": _jsonable(
                                {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")}
                            ),
                            "success": bool(result.success),
                            "result": _jsonable(detail),
                        }
                    )
    statistics = {
        "evaluated": len(results),
        "successful": sum(r["success"] for r in results),
        "unsuccessful": sum(not r["success"] for r in results),
        "rows": len(frame),
        "kept": len(kept),
    }
    outcome = ValidationOutcome(success, statistics, results, docs_index=docs_dir / "index.html")
    (out_dir / "results.json").write_text(
        json.dumps({"success": success, "statistics": statistics, "results": results}, indent=2, default=str)
    )
    outcome.summary_html = write_summary_html(outcome, out_dir / "summary.html", batches["groups"])
    return outcome


def write_summary_html(outcome: ValidationOutcome, path: Path, groups: pd.DataFrame) -> Path:
    """A self-contained page (inline CSS, no scripts): verdict, every expectation, group counts."""
    rows = []
    for r in outcome.results:
        observed = r["result"].get("observed_value", r["result"].get("unexpected_count", ""))
        if isinstance(observed, float) and math.isnan(observed):
            observed = ""
        examples = r["result"].get("partial_unexpected_list") or ""
        rows.append(
            f"<tr class={'ok' if r['success'] else 'bad'}><td>{'✓' if r['success'] else '✗'}</td>"
            f"<td>{html.escape(r['batch'])}</td><td>{html.escape(r['expectation'])}</td>"
            f"<td>{html.escape(str(r['column'] or ''))}</td>"
            f"<td>{html.escape(json.dumps(r['kwargs'], default=str))}</td>"
            f"<td>{html.escape(str(observed))}</td><td>{html.escape(str(examples)[:200])}</td></tr>"
        )
    verdict = "PASSED" if outcome.success else "FAILED"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>facegen data validation: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.bad{{background:#fdd}}
tr.ok td:first-child{{color:#070}}
h1 span{{color:{"#070" if outcome.success else "#b00"}}}</style></head><body>
<h1>Manifest validation: <span>{verdict}</span></h1>
<p>{outcome.statistics["successful"]} of {outcome.statistics["evaluated"]} expectations met over
{outcome.statistics["rows"]} rows ({outcome.statistics["kept"]} kept). Full great-expectations data docs:
<code>data_docs/index.html</code> (needs the internet for its styles).</p>
<table><tr><th></th><th>batch</th><th>expectation</th><th>column</th><th>arguments</th><th>observed / unexpected</th>
<th>examples</th></tr>{"".join(rows)}</table>
<h2>Kept images per group</h2>{groups.to_html(index=False)}</body></html>"""
    path.write_text(page)
    return path
