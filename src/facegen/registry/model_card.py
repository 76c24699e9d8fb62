"""A model card for every registered generator version: Markdown in its run's artifacts, linked from the version.

:func:`render_model_card` is pure (plain dicts in, Markdown out); :func:`card_inputs` gathers those dicts from what
the training run already recorded in MLflow (params, metrics, ``data/balance/balance_report.json``,
``fairness/fairness_report.json``) and from the version's tags (gate, champion comparison, ``human_eval.*``);
:func:`write_model_card` renders, logs ``model_card.md`` on the run and points the version's description at it.
``deploy_gate`` writes it after registration; ``complete_human_eval_gate`` writes it again when raters' results
arrive, so the human-evaluation section goes from "pending" to figures.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

#: The card's path in the version's source run.
CARD_ARTIFACT = "model_card.md"
BALANCE_REPORT_ARTIFACT = "data/balance/balance_report.json"
FAIRNESS_REPORT_ARTIFACT = "fairness/fairness_report.json"
#: Run params deploy_gate logs for the card (the manifest's identity is ZenML's, not MLflow's).
DATA_SOURCE_PARAM = "data_source"
FEEDBACK_SOURCE_PARAM = "data_feedback_source"
MANIFEST_HASH_PARAM = "data_manifest_sha256"
PENDING = "pending"

#: Licence terms of known training sources, matched case-insensitively in the source's path.
DATA_LICENCES = {
    "utkface": "UTKFace (Zhang, Song, Qi, CVPR 2017): available for **non-commercial research purposes only**; the "
    "copyright of the images belongs to their original owners; labels estimated by an algorithm (DEX) and checked "
    "by a person. A model trained on it inherits these terms: no commercial use.",
}
FEEDBACK_LICENCE = "Feedback faces are this service's own generated faces, approved by users for retraining."

INTENDED_USE = """- Synthetic face images for research, demos and tests of face-handling software, where no real person's
  likeness may be used; requested attributes (gender, age band, ethnicity) balance test sets.
- Every face is synthetic and is to be presented as such (content credentials and watermark)."""
MISUSE = """- Impersonating, or passing a face off as, a real person; fake profiles, identity documents, fraud.
- Inferring anything about real people; training or evaluating biometric identification on these faces alone.
- Any commercial use while the training data's terms forbid it (below)."""
LIMITATIONS = """- Low resolution and visible artefacts: faces are recognisably generated at close inspection.
- Attributes are requested, not guaranteed: the fairness table shows how often the classifier agrees
  (conditional accuracy), and that classifier is itself imperfect (classifier accuracy, corrected shares).
- The training data's labels are binary gender and five coarse ethnicity groups estimated from photos; they do not
  describe how people identify, and groups outside them are not represented.
- Metrics are computed on a few hundred to a few thousand faces: read their intervals, not only the point values."""


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _interval(pair: Any, digits: int = 3) -> str:
    return f"[{_num(pair[0], digits)}, {_num(pair[1], digits)}]" if pair else "n/a"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def licence_terms(source: str | None, feedback_source: str | None) -> list[str]:
    """One line per training source: its known terms, or that none are on record."""
    lines = []
    if source:
        known = [terms for key, terms in DATA_LICENCES.items() if key in source.lower()]
        lines.append(
            f"- `{source}`: "
            + (
                known[0]
                if known
                else "no licence terms on record for this source; establish them before any use of this model"
            )
        )
    if feedback_source:
        lines.append(f"- `{feedback_source}`: {FEEDBACK_LICENCE}")
    return lines or ["- training source not recorded in the run: licence terms unknown, do not use beyond research"]


def _data_section(params: Mapping[str, str], metrics: Mapping[str, float], balance: Mapping | None) -> list[str]:
    lines = ["## Data", ""]
    feedback = params.get(FEEDBACK_SOURCE_PARAM) or None
    lines.append(
        f"- Sources: `{params.get(DATA_SOURCE_PARAM, 'not recorded')}`"
        + (f", feedback `{feedback}`" if feedback else ", no feedback faces")
    )
    lines.append(
        f"- Manifest hash (sha256 of the manifest's content): `{params.get(MANIFEST_HASH_PARAM, 'not recorded')}`"
    )
    counts = [
        ("ingested", "data_ingested"),
        ("kept", "data_kept"),
        ("quarantined", "data_quarantined"),
        ("feedback ingested", "data_ingested_feedback"),
        ("grayscale flagged", "data_grayscale_flagged"),
        ("training images", "data_planned_samples"),
    ]
    lines.append("- Counts: " + ", ".join(f"{label} {int(metrics[key])}" for label, key in counts if key in metrics))
    reasons = {
        key.removeprefix("quarantined_"): int(value)
        for key, value in sorted(metrics.items())
        if key.startswith("quarantined_") and value
    }
    lines.append("- Quarantine reasons: " + (", ".join(f"{reason} {n}" for reason, n in reasons.items()) or "none"))
    if "validation_success" in metrics:
        lines.append(f"- Data validation: {'passed' if metrics['validation_success'] else 'failed'}")
    lines.append("")
    if balance is None:
        return lines + ["Balance before/after: not recorded in this run.", ""]
    cells = " × ".join(balance.get("cells") or []) or "none"
    lines.append(
        f"Balance ({balance.get('strategy')}, cells {cells}; images {balance.get('images_before')} before, "
        f"{balance.get('images_after')} after, {balance.get('images_dropped')} dropped, "
        f"{balance.get('images_repeated')} repeated):"
    )
    lines.append("")
    rows = [
        [
            attribute,
            group,
            _num(share["before_share"], 3),
            _num(share["after_share"], 3),
            _num(share["target_share"], 3),
        ]
        for attribute, groups in balance.get("shares", {}).items()
        if attribute != "cells"
        for group, share in groups.items()
    ]
    return lines + _table(["attribute", "group", "share before", "share after", "target"], rows) + [""]


def _training_section(params: Mapping[str, str], metrics: Mapping[str, float], tags: Mapping[str, str]) -> list[str]:
    lines = ["## Training", ""]
    lines.append(
        f"- Architecture `{params.get('architecture', 'not recorded')}` at {params.get('resolution', '?')} px, "
        f"{params.get('train_images', '?')} training images"
    )
    config = {key.removeprefix("train."): value for key, value in sorted(params.items()) if key.startswith("train.")}
    lines.append("- Config: " + (", ".join(f"`{key}={value}`" for key, value in config.items()) or "not recorded"))
    compute = [
        f"{_num(metrics['train_seconds'] / 60, 1)} min training" if "train_seconds" in metrics else None,
        f"{int(metrics['train_images_seen'])} images seen" if "train_images_seen" in metrics else None,
        f"device setting `{params['train.device']}`" if "train.device" in params else None,
        f"evaluated on {tags['latency_device']}" if "latency_device" in tags else None,
    ]
    lines.append("- Compute: " + (", ".join(item for item in compute if item) or "not recorded"))
    return lines + [""]


def _metrics_section(metrics: Mapping[str, float], params: Mapping[str, str], tags: Mapping[str, str]) -> list[str]:
    lines = [
        "## Metrics",
        "",
        f"Evaluation: {params.get('eval_num_generated', '?')} generated faces against "
        f"{params.get('eval_num_real', '?')} real ones at {params.get('eval_resolution', '?')} px "
        f"(protocol `{tags.get('eval_protocol_id', 'not recorded')}`).",
        "",
    ]

    def spread(std: str, over: str) -> str:
        return f"± {_num(metrics[std])} (std over {over})" if std in metrics else "point estimate"

    rows = [
        ["FID", _num(metrics.get("fid", "n/a"), 2), "at the N above: falls as N grows (no interval: one feature pass)"],
        ["FID∞", _num(metrics.get("fid_inf", "n/a"), 2), "extrapolated to N → ∞ (Chong & Forsyth 2020): the gated FID"],
        ["KID", _num(metrics.get("kid_mean", "n/a")), spread("kid_std", "subsets")],
        ["precision", _num(metrics.get("precision", "n/a")), "point estimate"],
        ["recall", _num(metrics.get("recall", "n/a")), "point estimate"],
        ["Inception Score", _num(metrics.get("is_mean", "n/a"), 3), spread("is_std", "splits")],
        ["near-copy share", _num(metrics.get("near_copy_share", "n/a")), "share of generated faces"],
        [
            "latency p50 / p95 (ms)",
            f"{_num(metrics.get('latency_p50_ms', 'n/a'), 2)} / {_num(metrics.get('latency_p95_ms', 'n/a'), 2)}",
            tags.get("latency_device", ""),
        ],
    ]
    lines += _table(["metric", "value", "interval / note"], [row for row in rows if row[1] != "n/a"])
    comparison = tags.get("champion_comparison")
    lines.append("")
    if comparison:
        record = json.loads(comparison)
        lines.append(f"Against champion version {record.get('champion_version')}: {record.get('summary')}")
    else:
        lines.append("Against the champion: no comparison (no champion at registration, or not required).")
    return lines + [""]


def _fairness_section(report: Mapping | None) -> list[str]:
    lines = ["## Fairness", ""]
    if not report:
        return lines + ["Not measured in this run.", ""]
    lines.append(
        "Shares of generated faces per group as the attribute classifier sees them (raw) and corrected for "
        "the classifier's confusion (with 95 % bootstrap intervals), against the balancing target."
    )
    for attribute, entry in report.items():
        generated = entry["generated"]
        target, corrected = generated.get("target") or {}, generated.get("corrected") or {}
        intervals = generated.get("corrected_ci") or {}
        lines += ["", f"### {attribute}", ""]
        rows = [
            [
                group,
                _num(target.get(group), 3),
                _num(share, 3),
                f"{_num(corrected.get(group), 3)} {_interval(intervals.get(group))}",
            ]
            for group, share in generated["shares"].items()
        ]
        lines += _table(["group", "target", "classified (raw)", "corrected [95 % CI]"], rows)
        if "tv" not in generated:  # not balanced on this attribute: nothing to measure the shares against
            lines += ["", "- No balancing target for this attribute: shares as classified, not gated."]
            continue
        lines += [
            "",
            f"- TV distance to target: {_num(generated['tv'], 3)} {_interval(generated.get('tv_ci'))} "
            f"(raw {_num(generated['tv_raw'], 3)}); representation ratio: "
            f"{_num(generated['representation_ratio'], 3)} {_interval(generated.get('representation_ratio_ci'))}",
            f"- Conditional accuracy (requested = classified): {_num(entry.get('conditional_accuracy'), 3)}; "
            f"classifier accuracy on held-out real faces: {_num(entry.get('classifier_accuracy'), 3)}",
        ]
    return lines + [""]


def _human_eval_section(tags: Mapping[str, str]) -> list[str]:
    lines = ["## Human evaluation", ""]
    required = {
        key.removeprefix("human_eval.required."): value
        for key, value in tags.items()
        if key.startswith("human_eval.required.")
    }
    if required:
        lines.append("Required: " + ", ".join(f"{key} {value}" for key, value in sorted(required.items())))
    if "human_eval.fool_rate" not in tags:
        return lines + [f"Results: {PENDING} (no ratings imported yet; `facegen human-eval import` fills this in).", ""]
    lines += _table(
        ["measure", "value", "95 % CI (Wilson)", "answered"],
        [
            [
                "fool rate (generated taken for real)",
                tags["human_eval.fool_rate"],
                tags.get("human_eval.fool_rate_ci95"),
                tags.get("human_eval.fool_n"),
            ],
            [
                "win rate over the champion",
                tags.get("human_eval.win_rate"),
                tags.get("human_eval.win_rate_ci95"),
                tags.get("human_eval.win_n"),
            ],
        ],
    )
    lines.append("")
    lines.append(
        f"{tags.get('human_eval.n_raters')} raters, {tags.get('human_eval.n_ratings')} ratings, "
        f"{tags.get('human_eval.n_unanswered')} unanswered; set `{tags.get('human_eval.set_id')}`, "
        f"imported {tags.get('human_eval.imported_at')}."
    )
    return lines + [""]


def render_model_card(inputs: Mapping[str, Any]) -> str:
    """The card as Markdown from :func:`card_inputs`' dict: ``model`` (name, version, run_id), ``params``,
    ``metrics``, ``tags`` (the run's), ``version_tags``, ``balance`` and ``fairness`` reports (None: not recorded)."""
    model, params, metrics = inputs["model"], inputs["params"], inputs["metrics"]
    run_tags, version_tags = inputs["tags"], inputs["version_tags"]
    status = version_tags.get("gate_status", "not gated")
    lines = [
        f"# Model card: {model['name']} version {model['version']}",
        "",
        f"Source run `{model['run_id']}`. Gate: **{status}**"
        + (f" ({version_tags['gate_reasons']})" if version_tags.get("gate_reasons") else "")
        + ".",
        "",
    ]
    if "approved_by" in version_tags:
        lines += [f"Approved by {version_tags['approved_by']} at {version_tags.get('approved_at')}.", ""]
    lines += _data_section(params, metrics, inputs["balance"])
    lines += _training_section(params, metrics, {**run_tags, **version_tags})
    lines += _metrics_section(metrics, params, {**run_tags, **version_tags})
    lines += _fairness_section(inputs["fairness"])
    lines += _human_eval_section(version_tags)
    lines += [
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Misuse",
        "",
        MISUSE,
        "",
        "## Known limitations",
        "",
        LIMITATIONS,
        "",
        "## Training data licence",
        "",
    ]
    lines += licence_terms(params.get(DATA_SOURCE_PARAM), params.get(FEEDBACK_SOURCE_PARAM) or None)
    return "\n".join(lines) + "\n"


def _run_json(client: MlflowClient, run_id: str, path: str) -> dict | None:
    """A JSON artifact of the run; None when the run has none at ``path`` (an older or partial run)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        with open(local, encoding="utf-8") as handle:
            return json.load(handle)


def card_inputs(client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """Everything the card shows, read from the version's tags and its source run (which it must have)."""
    if not version.run_id:
        raise ValueError(f"{version.name} version {version.version} has no source run: nowhere to put its card")
    run = client.get_run(version.run_id)
    current = client.get_model_version(version.name, version.version)
    return {
        "model": {"name": version.name, "version": str(version.version), "run_id": version.run_id},
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")},
        "version_tags": dict(current.tags or {}),
        "balance": _run_json(client, version.run_id, BALANCE_REPORT_ARTIFACT),
        "fairness": _run_json(client, version.run_id, FAIRNESS_REPORT_ARTIFACT),
    }


def card_uri(version: ModelVersion) -> str:
    return f"runs:/{version.run_id}/{CARD_ARTIFACT}"


def write_model_card(client: MlflowClient, version: ModelVersion) -> str:
    """Render the version's card, log it as ``model_card.md`` on its run, link it from the version's description.

    Returns the card's ``runs:/`` URI. Writing again replaces both (the same artifact path, the same description).
    """
    text = render_model_card(card_inputs(client, version))
    client.log_text(version.run_id, text, CARD_ARTIFACT)
    uri = card_uri(version)
    client.update_model_version(
        version.name, version.version, description=f"Model card: `{uri}` (artifact {CARD_ARTIFACT} of the source run)."
    )
    return uri
