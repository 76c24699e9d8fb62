"""Human-eval results in MLflow: the answer key fetched from a version's set, the scores written back beside it.

deploy_gate tags each version with ``human_eval_set`` = ``runs:/<RUN_ID>/human_eval`` (the exported set, logged on
the training run). An import (:func:`import_ratings`, behind ``facegen human-eval import``) reads the
``answer_key.csv`` from there, scores the rating files, and records:

- version tags ``human_eval.*`` (:data:`RESULT_TAGS`; rates with 4 decimals, intervals as ``[lo, hi]``, ``n/a`` for a
  task nobody answered), so the registry shows them next to ``gate_status``;
- metrics of the same names on the version's source run (a rate and its ``_ci95_low`` / ``_ci95_high`` only when
  answered), so the run shows them beside FID;
- the per-rater table as the run artifact ``human_eval_results/per_rater.csv``.

Then an ``awaiting_human_eval`` version is decided by :func:`facegen.registry.model_registry.complete_human_eval_gate`
(the rule itself: :func:`facegen.gates.decide_human_eval`).
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from facegen.gates import GateDecision
from facegen.humaneval.ratings import load_answer_key, load_ratings
from facegen.humaneval.scoring import (
    PER_RATER_COLUMNS,
    HumanEvalResults,
    format_ci,
    format_rate,
    per_rater_rows,
    score_ratings,
)
from facegen.registry.model_registry import complete_human_eval_gate

#: Version tag (set by deploy_gate) pointing at the exported set: ``runs:/<RUN_ID>/human_eval``.
HUMAN_EVAL_SET_TAG = "human_eval_set"
ANSWER_KEY_FILE = "answer_key.csv"
PER_RATER_ARTIFACT = "human_eval_results/per_rater.csv"
RESULT_TAGS = (
    "human_eval.set_id",
    "human_eval.fool_rate",
    "human_eval.fool_rate_ci95",
    "human_eval.fool_n",
    "human_eval.win_rate",
    "human_eval.win_rate_ci95",
    "human_eval.win_n",
    "human_eval.n_ratings",
    "human_eval.n_unanswered",
    "human_eval.n_raters",
    "human_eval.imported_at",
)


class AnswerKeyUnavailable(Exception):
    """The version's answer key cannot be fetched (no ``human_eval_set`` tag, or the artifact is not there)."""


@dataclass(frozen=True)
class ImportOutcome:
    """What an import found and did: the scores, the gate decision (None: not awaiting) and where it logged."""

    results: HumanEvalResults
    decision: GateDecision | None
    version: ModelVersion  # as re-read after the import
    run_id: str | None  # the source run that got the metrics; None when the version has no run


def fetch_answer_key(client: MlflowClient, version: ModelVersion, dst_dir: Path) -> Path:
    """Download ``answer_key.csv`` of the set the version's ``human_eval_set`` tag names into ``dst_dir``."""
    where = f"{version.name} version {version.version}"
    set_uri = (version.tags or {}).get(HUMAN_EVAL_SET_TAG, "")
    if not set_uri.startswith("runs:/") or "/" not in set_uri.removeprefix("runs:/"):
        found = f"is {set_uri!r}" if set_uri else "is missing"
        raise AnswerKeyUnavailable(
            f"{where}: tag {HUMAN_EVAL_SET_TAG} {found} (expected runs:/<RUN_ID>/<path>); "
            "give the key with --answer-key"
        )
    run_id, set_path = set_uri.removeprefix("runs:/").split("/", 1)
    try:
        return Path(client.download_artifacts(run_id, f"{set_path.rstrip('/')}/{ANSWER_KEY_FILE}", str(dst_dir)))
    except (MlflowException, OSError) as error:
        message = getattr(error, "message", str(error))
        raise AnswerKeyUnavailable(f"{where}: cannot fetch {set_uri}/{ANSWER_KEY_FILE}: {message}") from error


def result_tags(results: HumanEvalResults, imported_at: str) -> dict[str, str]:
    """The :data:`RESULT_TAGS` values of ``results``."""
    return {
        "human_eval.set_id": results.set_id,
        "human_eval.fool_rate": format_rate(results.fool),
        "human_eval.fool_rate_ci95": format_ci(results.fool),
        "human_eval.fool_n": str(results.fool.n),
        "human_eval.win_rate": format_rate(results.win),
        "human_eval.win_rate_ci95": format_ci(results.win),
        "human_eval.win_n": str(results.win.n),
        "human_eval.n_ratings": str(results.n_ratings),
        "human_eval.n_unanswered": str(results.n_unanswered),
        "human_eval.n_raters": str(results.n_raters),
        "human_eval.imported_at": imported_at,
    }


def result_metrics(results: HumanEvalResults) -> dict[str, float]:
    """Counts always; each rate and its interval bounds only when its task was answered."""
    metrics = {
        "human_eval.fool_n": float(results.fool.n),
        "human_eval.win_n": float(results.win.n),
        "human_eval.n_ratings": float(results.n_ratings),
        "human_eval.n_unanswered": float(results.n_unanswered),
        "human_eval.n_raters": float(results.n_raters),
    }
    for name, rate in (("fool_rate", results.fool), ("win_rate", results.win)):
        if rate.value is None or rate.ci95 is None:
            continue
        metrics[f"human_eval.{name}"] = rate.value
        metrics[f"human_eval.{name}_ci95_low"], metrics[f"human_eval.{name}_ci95_high"] = rate.ci95
    return metrics


def _per_rater_csv(results: HumanEvalResults) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PER_RATER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(per_rater_rows(results))
    return buffer.getvalue()


def record_results(client: MlflowClient, version: ModelVersion, results: HumanEvalResults) -> str | None:
    """Write ``results`` as version tags, source-run metrics and the per-rater artifact; return the run id used."""
    imported_at = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in result_tags(results, imported_at).items():
        client.set_model_version_tag(version.name, version.version, key, value)
    if not version.run_id:
        return None
    timestamp = int(time.time() * 1000)
    metrics = [Metric(key, value, timestamp, 0) for key, value in result_metrics(results).items()]
    client.log_batch(version.run_id, metrics=metrics)
    client.log_text(version.run_id, _per_rater_csv(results), PER_RATER_ARTIFACT)
    return version.run_id


def import_ratings(
    client: MlflowClient,
    model_name: str,
    version: str,
    files: Sequence[Path],
    *,
    answer_key: Path | None = None,
) -> ImportOutcome:
    """Score ``files`` against the version's answer key (or ``answer_key``), record the results, finish the gate.

    Raises ``MlflowException`` for an unknown version, :class:`AnswerKeyUnavailable` and
    :class:`facegen.humaneval.ratings.RatingsError` before anything is written.
    """
    current = client.get_model_version(model_name, str(version))
    with tempfile.TemporaryDirectory(prefix="facegen-answer-key-") as tmp:
        key = load_answer_key(answer_key or fetch_answer_key(client, current, Path(tmp)))
    results = score_ratings(key, load_ratings(files, key))
    run_id = record_results(client, current, results)
    decision = complete_human_eval_gate(client, current, results)
    return ImportOutcome(results, decision, client.get_model_version(model_name, str(version)), run_id)
