"""Every gate decision on plain numbers (facegen.gates): no MLflow server, no ZenML."""

from __future__ import annotations

import math

import pytest

from facegen.gates import (
    Acceptance,
    FairnessThresholds,
    GateDecision,
    GateThresholds,
    HumanEvalRequirement,
    champion_acceptable,
    decide_attribute_promotion,
    decide_gate,
    decide_human_eval,
    fairness_violations,
)
from facegen.humaneval.scoring import HumanEvalResults, Rate
from facegen.metrics.comparison import ChampionComparison, MetricDifference

# --- the generator: quality and the champion ---------------------------------------------------------------------


def comparison(estimate: float, low: float, high: float) -> ChampionComparison:
    """The champion comparison the gate reads: KID(candidate) − KID(champion) with its bootstrap interval."""
    difference = MetricDifference("kid", estimate, low, high, 0.95, 1000)
    return ChampionComparison("3", "p2", "p1", True, difference)


BETTER = comparison(-0.02, -0.03, -0.01)  # the whole interval below 0
UNDECIDED = comparison(-0.02, -0.05, 0.001)  # lower, but within resampling noise
INCOMPARABLE = ChampionComparison("3", "p2", "p1", False, not_comparable="draws 32×32 faces, the protocol …")


def test_gate_passes_within_thresholds_and_beating_champion() -> None:
    thresholds = GateThresholds(max_fid_inf=50.0, max_kid=0.05)
    assert decide_gate({"fid_inf": 40.0, "kid_mean": 0.04}, thresholds, None) == GateDecision(
        True, []
    )  # no champion yet
    assert decide_gate({"fid_inf": 40.0, "kid_mean": 0.04}, thresholds, BETTER).passed
    assert decide_gate({"fid_inf": 50.0, "kid_mean": 0.05}, thresholds, None).passed  # limits are inclusive
    assert decide_gate({"fid_inf": 10.0}, GateThresholds(max_fid_inf=50.0, max_kid=None), None).passed  # KID not gated
    # FID at N is not the gated figure: at 500 faces it sits far above FID∞ (docs/benchmarks.md "FID at N vs FID∞").
    assert decide_gate({"fid": 236.7, "fid_inf": 40.0}, GateThresholds(max_fid_inf=50.0), None).passed


def test_gate_failures_each_give_a_reason() -> None:
    decision = decide_gate(
        {"fid_inf": 60.0, "kid_mean": 0.07}, GateThresholds(max_fid_inf=50.0, max_kid=0.05), UNDECIDED
    )
    assert not decision.passed and len(decision.reasons) == 3
    assert decision.reasons[0] == "FID∞ (fid_inf) 60 is above the limit 50"
    assert decision.reasons[1] == "kid_mean 0.07 is above the limit 0.05"
    assert decision.reasons[2] == (
        "kid difference -0.02 (candidate − champion), 95% CI [-0.05, +0.001] over 1000 "
        "bootstrap replicates: not significantly better than champion v3"
    )


def test_an_incomparable_champion_fails_the_gate_unless_beating_it_is_not_required() -> None:
    assert decide_gate({"fid_inf": 40.0}, GateThresholds(max_fid_inf=50.0), INCOMPARABLE).reasons == [
        "not comparable: champion v3 draws 32×32 faces, the protocol …"
    ]
    not_required = GateThresholds(max_fid_inf=50.0, require_beats_champion=False)
    assert decide_gate({"fid_inf": 40.0}, not_required, INCOMPARABLE).passed
    assert decide_gate({"fid_inf": 40.0}, not_required, UNDECIDED).passed


@pytest.mark.parametrize(
    ("metrics", "thresholds", "match"),
    [
        ({"kid_mean": 0.01}, GateThresholds(max_fid_inf=50.0), "candidate metric 'fid_inf' is missing"),
        ({"fid_inf": 10.0}, GateThresholds(max_fid_inf=50.0, max_kid=0.05), "'kid_mean' is missing"),
        ({"fid_inf": math.nan}, GateThresholds(max_fid_inf=50.0), "NaN"),
    ],
)
def test_gate_never_passes_on_missing_metrics(metrics, thresholds, match) -> None:
    with pytest.raises(ValueError, match=match):
        decide_gate(metrics, thresholds, None)


# --- the generator: fairness --------------------------------------------------------------------------------------

#: A fairness_report's shape (metrics.fairness): gender on target, age_bin far off (corrected, with intervals).
REPORT = {
    "gender": {"generated": {"tv": 0.02, "representation_ratio": 0.92}},
    "age_bin": {
        "generated": {
            "tv": 0.3,
            "tv_ci": [0.25, 0.35],
            "representation_ratio": 0.1,
            "representation_ratio_ci": [0.05, 0.2],
            "corrected": {"20-29": 1.0},
        }
    },
}


def test_fairness_violations_name_each_failed_limit() -> None:
    assert fairness_violations(REPORT, FairnessThresholds(max_tv={"gender": 0.05, "age_bin": 0.10})) == [
        "age_bin: corrected TV distance 0.300 (95% CI 0.250–0.350) to the target is above 0.100",
        "age_bin: corrected representation ratio 0.100 (95% CI 0.050–0.200) is below 0.800",
    ]
    assert fairness_violations(REPORT, FairnessThresholds(max_tv={"gender": 0.05})) == []
    assert fairness_violations(REPORT, FairnessThresholds(max_tv={"gender": 0.01}, min_representation_ratio=None)) == [
        "gender: uncorrected TV distance 0.020 to the target is above 0.010"
    ]
    assert fairness_violations(REPORT, FairnessThresholds(max_tv={})) == []  # fairness not gated


def test_an_unmeasured_fairness_gate_fails() -> None:
    unmeasured = fairness_violations(REPORT, FairnessThresholds(max_tv={"ethnicity": 0.10}))
    assert unmeasured == ["ethnicity: fairness not measured against a target, cannot pass its TV gate"]
    assert fairness_violations(None, FairnessThresholds(max_tv={"gender": 0.05}))  # no report at all fails too


def test_the_generator_gate_adds_fairness_to_quality() -> None:
    fairness = FairnessThresholds(max_tv={"gender": 0.05, "age_bin": 0.10})
    decision = decide_gate({"fid_inf": 60.0}, GateThresholds(max_fid_inf=50.0, fairness=fairness), BETTER, REPORT)
    assert not decision.passed and decision.reasons[0] == "FID∞ (fid_inf) 60 is above the limit 50"
    assert [r.split(":")[0] for r in decision.reasons[1:]] == ["age_bin", "age_bin"]
    assert decide_gate({"fid_inf": 40.0}, GateThresholds(max_fid_inf=50.0), BETTER, REPORT).passed  # fairness not gated
    gender_only = GateThresholds(max_fid_inf=50.0, fairness=FairnessThresholds(max_tv={"gender": 0.05}))
    assert decide_gate({"fid_inf": 40.0}, gender_only, BETTER, REPORT) == GateDecision(True, [])


# --- human evaluation ---------------------------------------------------------------------------------------------


def test_requirement_is_validated() -> None:
    with pytest.raises(ValueError, match="needs min_fool_rate or min_win_rate"):
        HumanEvalRequirement(min_ratings=10)
    with pytest.raises(ValueError, match="min_win_rate must be a share between 0 and 1"):
        HumanEvalRequirement(min_win_rate=55)
    with pytest.raises(ValueError, match="min_ratings must be a positive integer"):
        HumanEvalRequirement(min_fool_rate=0.3, min_ratings=0)


def test_requirement_from_config_drops_the_win_rate_without_a_champion() -> None:
    config = {"min_fool_rate": 0.3, "min_win_rate": 0.5, "min_ratings": 20}
    assert HumanEvalRequirement.from_config(config, has_champion=True) == HumanEvalRequirement(0.3, 0.5, 20)
    assert HumanEvalRequirement.from_config(config, has_champion=False) == HumanEvalRequirement(0.3, None, 20)
    assert HumanEvalRequirement.from_config({"min_win_rate": 0.5}, has_champion=False) is None  # nothing left to ask
    assert HumanEvalRequirement.from_config(None, has_champion=True) is None
    assert HumanEvalRequirement.from_config({}, has_champion=True) is None


def test_human_eval_decision_needs_enough_answers_and_each_minimum() -> None:
    results = HumanEvalResults("set", fool=Rate(3, 10), win=Rate(3, 4), n_unanswered=0, per_rater=())
    assert decide_human_eval(results, HumanEvalRequirement(min_fool_rate=0.3, min_ratings=10)) == GateDecision(True, [])
    both = decide_human_eval(results, HumanEvalRequirement(min_fool_rate=0.35, min_win_rate=0.5, min_ratings=10))
    assert not both.passed and both.reasons == [
        "human eval: fool rate 0.3000 is below the required 0.35",
        "human eval: only 4 answered candidate_vs_champion rating(s), 10 required",
    ]


# --- the attribute model ------------------------------------------------------------------------------------------


def test_attribute_model_is_promoted_only_when_it_beats_every_baseline_figure() -> None:
    metrics = {"holdout_gender_accuracy": 0.93, "holdout_age_bin_accuracy": 0.48}
    beaten = decide_attribute_promotion(metrics, {"gender_accuracy": 0.9})
    assert beaten.promote and beaten.beats_baseline and beaten.reasons == []
    short = decide_attribute_promotion(metrics, {"gender_accuracy": 0.9, "age_bin_accuracy": 0.5})
    assert not short.promote and not short.beats_baseline
    assert short.reasons == ["holdout_age_bin_accuracy 0.4800 does not beat the baseline 0.5000"]
    assert not decide_attribute_promotion(metrics, {"gender_accuracy": 0.93}).promote  # a tie does not beat it
    missing = decide_attribute_promotion(metrics, {"ethnicity_accuracy": 0.5})
    assert not missing.promote and missing.reasons == [
        "holdout_ethnicity_accuracy nan does not beat the baseline 0.5000"
    ]
    unasked = decide_attribute_promotion(metrics, {})  # no baseline: every version is promoted, none "beats" it
    assert unasked.promote and not unasked.beats_baseline


# --- the champion: what may be served ----------------------------------------------------------------------------


def test_only_a_passed_version_is_acceptable_as_champion_without_an_override() -> None:
    assert champion_acceptable({"gate_status": "passed", "approved_by": "ada"}) == Acceptance(
        True, "gate_status is 'passed'"
    )
    assert champion_acceptable({"gate_status": "failed", "gate_reasons": "fid 80 is above the limit 50"}) == Acceptance(
        False, "gate_status is 'failed' and no forced approval (approved_by and approval_forced_reason not set)"
    )
    waiting = champion_acceptable({"gate_status": "awaiting_human_eval"})
    assert not waiting.ok and waiting.reason.startswith("gate_status is 'awaiting_human_eval'")
    for never_gated in ({}, None, {"gate_status": ""}):
        assert champion_acceptable(never_gated) == Acceptance(
            False,
            "it has no gate_status (never gated) and no forced approval "
            "(approved_by and approval_forced_reason not set)",
        )
    assert not champion_acceptable({"gate_status": "Passed"}).ok  # only the value the gate writes counts


def test_a_forced_approval_needs_both_who_and_why() -> None:
    forced = {"gate_status": "failed", "approved_by": "ada", "approval_forced_reason": "raters prefer it"}
    assert champion_acceptable(forced) == Acceptance(
        True, "gate_status is 'failed', approval forced by ada: raters prefer it"
    )
    never_gated = champion_acceptable({"approved_by": "ada", "approval_forced_reason": "hotfix"})  # set in the UI
    assert never_gated == Acceptance(True, "it has no gate_status (never gated), approval forced by ada: hotfix")
    assert champion_acceptable({**forced, "approval_forced_reason": "  "}) == Acceptance(
        False, "gate_status is 'failed' and no forced approval (approval_forced_reason not set)"
    )
    assert champion_acceptable({"gate_status": "failed", "approval_forced_reason": "raters prefer it"}) == Acceptance(
        False, "gate_status is 'failed' and no forced approval (approved_by not set)"
    )


def test_fairness_gates_block_defaults_once_and_refuses_unknown_keys() -> None:
    assert FairnessThresholds.from_config(None) == FairnessThresholds()
    assert FairnessThresholds.from_config({"max_tv": {}}).max_tv == {}
    custom = FairnessThresholds.from_config({"max_tv": {"gender": 0.2}, "min_representation_ratio": None})
    assert custom == FairnessThresholds(max_tv={"gender": 0.2}, min_representation_ratio=None)
    with pytest.raises(ValueError, match=r"unknown fairness_gates key\(s\) \['max_TV'\]"):
        FairnessThresholds.from_config({"max_TV": {"gender": 0.2}})
