"""The model card of a generator version: rendered from plain dicts, written to its run, refilled on human-eval import.

Specifies: every section is there (data, training, metrics, fairness, human evaluation, intended use, misuse,
limitations, licence); the fairness table carries per group the target, the raw and the corrected share with its
interval, and per attribute TV, representation ratio, conditional and classifier accuracy; human evaluation reads
"pending" until results exist, then their rates and intervals; a UTKFace-trained version says non-commercial only.
Against a real MLflow server: the card is ``model_card.md`` on the version's run and the description links it; a
human-eval import of a waiting version fills the pending section in.
"""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from facegen.gates import HumanEvalRequirement
from facegen.humaneval.results import record_results
from facegen.humaneval.scoring import HumanEvalResults, Rate
from facegen.models.bundle import save_generator_bundle
from facegen.models.registry import build_generator
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_card import (
    BALANCE_REPORT_ARTIFACT,
    CARD_ARTIFACT,
    DATA_SOURCE_PARAM,
    FAIRNESS_REPORT_ARTIFACT,
    MANIFEST_HASH_PARAM,
    PENDING,
    render_model_card,
    write_model_card,
)
from facegen.registry.model_registry import (
    AWAITING_HUMAN_EVAL,
    GATE_PASSED,
    GATE_STATUS_TAG,
    complete_human_eval_gate,
    register_version,
    require_human_eval,
)
from tests.mlflow_server import use_tracking_uri
from tests.test_model_registry import unique_name

SECTIONS = [
    "## Data",
    "## Training",
    "## Metrics",
    "## Fairness",
    "## Human evaluation",
    "## Intended use",
    "## Misuse",
    "## Known limitations",
    "## Training data licence",
]
FAIRNESS = {
    "gender": {
        "generated": {
            "n": 1000,
            "shares": {"female": 0.61, "male": 0.39},
            "target": {"female": 0.5, "male": 0.5},
            "tv_raw": 0.11,
            "representation_ratio_raw": 0.64,
            "corrected": {"female": 0.63, "male": 0.37},
            "corrected_ci": {"female": [0.6, 0.66], "male": [0.34, 0.4]},
            "tv": 0.13,
            "tv_ci": [0.1, 0.16],
            "representation_ratio": 0.59,
            "representation_ratio_ci": [0.52, 0.66],
        },
        "classifier_accuracy": 0.91,
        "conditional_accuracy": 0.8,
    },
}
BALANCE = {
    "cells": ["gender"],
    "strategy": "weights",
    "images_before": 100,
    "images_after": 100,
    "images_dropped": 0,
    "images_repeated": 0,
    "shares": {
        "gender": {
            "female": {"before_share": 0.4, "after_share": 0.5, "target_share": 0.5},
            "male": {"before_share": 0.6, "after_share": 0.5, "target_share": 0.5},
        }
    },
}
PARAMS = {
    DATA_SOURCE_PARAM: "../shared/data/utkface/UTKFace.zip",
    MANIFEST_HASH_PARAM: "ab12" * 16,
    "architecture": "dcgan",
    "resolution": "32",
    "train_images": "100",
    "train.epochs": "10",
    "eval_num_generated": "500",
    "eval_num_real": "500",
    "eval_resolution": "32",
}
METRICS = {
    "data_ingested": 120.0,
    "data_kept": 100.0,
    "data_quarantined": 20.0,
    "quarantined_blurry": 12.0,
    "quarantined_no_face": 8.0,
    "quarantined_too_small": 0.0,
    "train_seconds": 120.0,
    "fid": 88.5,
    "fid_inf": 80.25,
    "kid_mean": 0.05,
    "kid_std": 0.004,
    "precision": 0.4,
    "recall": 0.2,
}
HUMAN_EVAL_TAGS = {
    "human_eval.fool_rate": "0.3125",
    "human_eval.fool_rate_ci95": "[0.1800, 0.4800]",
    "human_eval.fool_n": "32",
    "human_eval.win_rate": "n/a",
    "human_eval.win_rate_ci95": "n/a",
    "human_eval.win_n": "0",
    "human_eval.n_raters": "2",
    "human_eval.n_ratings": "32",
}


def inputs(version_tags: dict[str, str] | None = None) -> dict:
    return {
        "model": {"name": "facegen-generator", "version": "3", "run_id": "r" * 32},
        "params": PARAMS,
        "metrics": METRICS,
        "tags": {"latency_device": "cpu"},
        "balance": BALANCE,
        "fairness": FAIRNESS,
        "version_tags": {GATE_STATUS_TAG: AWAITING_HUMAN_EVAL, **(version_tags or {})},
    }


def section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_section_is_there_with_the_datas_figures() -> None:
    card = render_model_card(inputs())
    positions = [card.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)
    data = section(card, "Data")
    assert "`../shared/data/utkface/UTKFace.zip`" in data and PARAMS[MANIFEST_HASH_PARAM] in data
    assert "ingested 120, kept 100, quarantined 20" in data
    assert "Quarantine reasons: blurry 12, no_face 8" in data and "too_small" not in data  # only reasons that struck
    assert "| gender | female | 0.400 | 0.500 | 0.500 |" in data  # balance before / after / target
    metrics = section(card, "Metrics")
    assert "| FID | 88.50 | at the N above: falls as N grows" in metrics and "| FID∞ | 80.25 | extrapolated" in metrics
    assert "| KID | 0.0500 | ± 0.0040 (std over subsets) |" in metrics
    assert "`epochs=10`" in section(card, "Training") and "2.0 min training" in section(card, "Training")


def test_the_fairness_table_has_target_raw_corrected_with_interval_tv_ratio_and_accuracies() -> None:
    fairness = section(render_model_card(inputs()), "Fairness")
    assert "| female | 0.500 | 0.610 | 0.630 [0.600, 0.660] |" in fairness
    assert "TV distance to target: 0.130 [0.100, 0.160] (raw 0.110)" in fairness
    assert "representation ratio: 0.590 [0.520, 0.660]" in fairness
    assert "Conditional accuracy (requested = classified): 0.800" in fairness and "0.910" in fairness


def test_an_attribute_without_a_balancing_target_shows_its_shares_and_says_it_is_not_gated() -> None:
    unbalanced = {"ethnicity": {"generated": {"n": 10, "shares": {"White": 0.7, "Black": 0.3}, "target": None}}}
    fairness = section(render_model_card({**inputs(), "fairness": unbalanced}), "Fairness")
    assert "| White | n/a | 0.700 | n/a n/a |" in fairness
    assert "No balancing target for this attribute: shares as classified, not gated." in fairness


def test_human_evaluation_is_pending_until_results_then_shows_them() -> None:
    pending = section(render_model_card(inputs()), "Human evaluation")
    assert PENDING in pending and "0.3125" not in pending
    done = section(render_model_card(inputs(HUMAN_EVAL_TAGS)), "Human evaluation")
    assert PENDING not in done
    assert "| fool rate (generated taken for real) | 0.3125 | [0.1800, 0.4800] | 32 |" in done
    assert "2 raters, 32 ratings" in done


def test_the_licence_says_non_commercial_for_utkface_and_unknown_for_other_sources() -> None:
    licence = section(render_model_card(inputs()), "Training data licence")
    assert "non-commercial research purposes only" in licence
    other = render_model_card({**inputs(), "params": {**PARAMS, DATA_SOURCE_PARAM: "s3://bucket/faces/"}})
    assert "no licence terms on record for this source" in section(other, "Training data licence")


def test_missing_reports_say_so_instead_of_failing() -> None:
    card = render_model_card({**inputs(), "balance": None, "fairness": None})
    assert "Balance before/after: not recorded in this run." in card and "Not measured in this run." in card


def test_the_version_links_its_card_and_a_human_eval_import_fills_it_in(
    mlflow_tracking: MlflowClient, tmp_path
) -> None:
    client, name = mlflow_tracking, unique_name()
    bundle = save_generator_bundle(
        tmp_path / "bundle",
        "dcgan",
        {"resolution": 16, "width": 8},
        build_generator("dcgan", {"resolution": 16, "width": 8}),
    )
    with use_tracking_uri(client.tracking_uri), mlflow.start_run() as run:
        mlflow.log_params(PARAMS)
        mlflow.log_metrics(METRICS)
        mlflow.log_dict(BALANCE, BALANCE_REPORT_ARTIFACT)
        mlflow.log_dict(FAIRNESS, FAIRNESS_REPORT_ARTIFACT)
        info = log_generator_model(bundle)
    version = register_version(info.model_uri, name=name, tags={}, client=client)
    require_human_eval(client, version, HumanEvalRequirement(min_fool_rate=0.2, min_win_rate=None, min_ratings=10))
    uri = write_model_card(client, version)

    assert uri == f"runs:/{run.info.run_id}/{CARD_ARTIFACT}"
    assert uri in client.get_model_version(name, version.version).description
    card = mlflow.artifacts.load_text(uri)
    assert f"# Model card: {name} version {version.version}" in card
    assert PENDING in section(card, "Human evaluation") and "non-commercial" in card

    results = HumanEvalResults("set-1", fool=Rate(hits=9, n=24), win=Rate(hits=0, n=0), n_unanswered=1, per_rater=())
    record_results(client, version, results)  # what `facegen human-eval import` does, then it finishes the gate
    decision = complete_human_eval_gate(client, version, results)

    assert decision is not None and decision.passed
    refilled = section(mlflow.artifacts.load_text(uri), "Human evaluation")
    assert PENDING not in refilled and "| fool rate (generated taken for real) | 0.3750 |" in refilled
    assert client.get_model_version(name, version.version).tags[GATE_STATUS_TAG] == GATE_PASSED


@pytest.mark.parametrize("missing", ["model", "params", "version_tags"])
def test_inputs_without_a_required_part_are_an_error(missing: str) -> None:
    with pytest.raises(KeyError, match=missing):
        render_model_card({key: value for key, value in inputs().items() if key != missing})
