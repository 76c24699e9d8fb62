"""What a finished `training` run means, in a few lines: ``make train`` ends by printing it (``facegen outcome``).

A person should not have to open MLflow to learn whether anything can be deployed: the key metrics, the gate's
result with its reasons, the registered version and its aliases, where the pictures are, and the next command.
Everything is read back from MLflow (the run's metrics and its ``deploy_gate.json``), so the summary shows what
was recorded, not what a step believed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Run

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.registry.model_registry import CANDIDATE_ALIAS, CHAMPION_ALIAS

#: Pictures to look at, in the order a person would open them.
PICTURES = (
    "samples/by_attribute.png",
    "samples/evaluation_grid.png",
    "fairness/generated_shares.png",
    "memorisation/closest_pairs.png",
    "curves/losses.png",
)


@dataclass(frozen=True)
class RunOutcome:
    run: Run
    gate: dict
    aliases: list[str]
    pictures: list[str]  # artifact URIs that exist


def latest_outcome(client: MlflowClient, *, experiment: str = "training", run_name: str | None = None) -> RunOutcome:
    """The newest run of ``experiment`` (or the one named ``run_name``) that reached the deploy gate."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment {experiment!r} at {client.tracking_uri}")
    query = f"attributes.run_name = '{run_name}'" if run_name else ""
    for run in client.search_runs(
        [found.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=20
    ):
        try:
            gate = json.loads(Path(client.download_artifacts(run.info.run_id, "deploy_gate.json")).read_text())
        except Exception:  # noqa: BLE001 - a run that stopped before the gate has no decision to report
            continue
        version = client.get_model_version(gate["model_name"], str(gate["version"]))
        artifacts = {
            item.path
            for folder in {p.rsplit("/", 1)[0] for p in PICTURES}
            for item in client.list_artifacts(run.info.run_id, folder)
        }
        pictures = [f"{run.info.artifact_uri}/{path}" for path in PICTURES if path in artifacts]
        return RunOutcome(run, gate, sorted(version.aliases or []), pictures)
    raise LookupError(f"no run of {experiment!r}{f' named {run_name}' if run_name else ''} reached the deploy gate")


def record_cached_figures(client: MlflowClient, run_id: str, figures: dict[str, object]) -> dict[str, float]:
    """Log onto ``run_id`` the numeric ``figures`` it lacks; returns what was logged.

    A step ZenML serves from its cache does not run, so its MLflow metrics stay on the run that computed them; the
    deploy gate, which takes those figures as inputs, copies them here so the run that registers the version (and
    :func:`format_outcome`) shows the numbers the gate decided on.
    """
    present = client.get_run(run_id).data.metrics
    missing = {
        key: float(value)
        for key, value in figures.items()
        if key not in present and isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if missing:
        timestamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(key, value, timestamp, 0) for key, value in missing.items()])
    return missing


def _fairness_lines(metrics: dict[str, float]) -> list[str]:
    lines = []
    for attribute in ATTRIBUTE_VALUES:
        key = f"fairness_{attribute}"
        if f"{key}_tv" not in metrics:
            continue
        line = f"    {attribute:<10} TV {metrics[f'{key}_tv']:.3f}"
        if f"{key}_tv_ci_low" in metrics:
            line += f" [{metrics[f'{key}_tv_ci_low']:.3f}–{metrics[f'{key}_tv_ci_high']:.3f}]"
        line += f"  min/max {metrics[f'{key}_representation_ratio']:.2f}"
        if f"{key}_tv_raw" in metrics:
            line += f"  (as classified: TV {metrics[f'{key}_tv_raw']:.3f})"
        if f"{key}_conditional_accuracy" in metrics:
            line += f"  classified as requested {metrics[f'{key}_conditional_accuracy']:.2f}"
            if f"{key}_classifier_accuracy" in metrics:
                line += f" (classifier's own accuracy {metrics[f'{key}_classifier_accuracy']:.2f})"
        lines.append(line)
    return lines


def format_outcome(outcome: RunOutcome) -> str:
    """The summary printed at the end of ``make train``."""
    run, gate = outcome.run, outcome.gate
    metrics = run.data.metrics
    name, version = gate["model_name"], gate["version"]
    # FID at N next to the figures that do not depend on N (FID∞, KID): the gate reads those
    figures = (
        ("fid", "FID", f" (N={run.data.params.get('eval_num_generated', '?')})"),
        ("fid_inf", "FID∞", ""),
        ("kid_mean", "KID", ""),
        ("precision", "precision", ""),
        ("recall", "recall", ""),
    )
    quality = ", ".join(f"{label} {metrics[key]:.4g}{after}" for key, label, after in figures if key in metrics)
    lines = [
        f"=== training run {run.info.run_name} (MLflow run {run.info.run_id}) ===",
        f"  quality: {quality}",
        "  fairness of generated faces (corrected for the classifier's errors, 95% CI):",
        *_fairness_lines(metrics),
    ]
    status = gate.get("gate_status") or ("passed" if gate["passed"] else "failed")
    lines.append(f"  gate: {status.upper()}")
    lines += [f"    - {reason}" for reason in gate.get("reasons", [])]
    aliases = ", ".join(outcome.aliases) or "no alias"
    lines.append(f"  registered: {name} version {version} ({aliases}); champion is version {gate['champion_version']}")
    if outcome.pictures:
        lines.append("  pictures (make mlflow-ui → http://127.0.0.1:5000, or open the files):")
        lines += [f"    {uri.removeprefix('file://')}" for uri in outcome.pictures]
    if CANDIDATE_ALIAS in outcome.aliases:
        lines.append(f'  next: facegen approve {version} --by "Your Name"   then   facegen serve')
    elif CHAMPION_ALIAS in outcome.aliases:
        lines.append("  next: facegen serve   (this version is the champion)")
    else:
        lines.append(
            f'  next: read gate_reasons above; to try it anyway: facegen approve {version} --by "Your Name" '
            '--force --reason "…"'
        )
    return "\n".join(lines)
