"""Every gate decision facegen makes, as pure functions: what a model version must show before an alias may move.

- the generator (``deploy_gate``): quality limits (FID∞, KID: figures that do not depend on the number of generated
  faces, so a limit means the same at 500 faces as at 10,000), the comparison with the champion (a bootstrap on KID)
  and the fairness limits, all in :func:`decide_gate`;
- human evaluation: the requirement a version that passed waits for (:meth:`HumanEvalRequirement.from_config`) and
  the decision on the raters' answers (:func:`decide_human_eval`, behind ``facegen human-eval import``);
- the attribute model (``train_attribute_model``): promotion to its alias when it beats the baseline
  (:func:`decide_attribute_promotion`);
- the champion: whether a version may serve at all (:func:`champion_acceptable`), the one rule ``facegen approve``
  and the service both apply, so moving the alias in the MLflow UI cannot walk around the gates.

Nothing here talks to MLflow: recording a decision on a version (tags, aliases) is
:mod:`facegen.registry.model_registry`'s job, so these rules are tested on plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facegen.humaneval.scoring import HumanEvalResults, Rate
    from facegen.metrics.comparison import ChampionComparison

#: The fairness gate defaults of the evaluation issue: TV ≤ 0.05 for gender, ≤ 0.10 for age_bin and ethnicity.
DEFAULT_MAX_TV: dict[str, float] = {"gender": 0.05, "age_bin": 0.10, "ethnicity": 0.10}
DEFAULT_MIN_REPRESENTATION_RATIO = 0.8

#: The version tags :func:`champion_acceptable` reads (written by :mod:`facegen.registry.model_registry`).
GATE_STATUS_TAG = "gate_status"
GATE_PASSED = "passed"
APPROVED_BY_TAG = "approved_by"
APPROVAL_FORCED_REASON_TAG = "approval_forced_reason"


@dataclass(frozen=True)
class GateDecision:
    """Outcome of a gate; ``reasons`` holds one human-readable line per failed rule (empty when passed)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FairnessThresholds:
    """Fairness limits; an attribute listed in ``max_tv`` must have been measured against a target to pass."""

    max_tv: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_TV))
    min_representation_ratio: float | None = DEFAULT_MIN_REPRESENTATION_RATIO

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> FairnessThresholds:
        """The pipeline's ``fairness_gates`` block: None → the defaults; ``{max_tv: {}}`` → fairness not gated.

        One block serves both steps that need it: evaluate_fairness (the gate's power, ``perfect_pass_rate``) and
        deploy_gate (the decision), so the power is always reported for the limits that decide.
        """
        settings = dict(config or {})
        unknown = sorted(set(settings) - {"max_tv", "min_representation_ratio"})
        if unknown:
            raise ValueError(
                f"unknown fairness_gates key(s) {unknown}; allowed: ['max_tv', 'min_representation_ratio']"
            )
        return cls(**{**settings, **({"max_tv": dict(settings["max_tv"])} if "max_tv" in settings else {})})


@dataclass(frozen=True)
class GateThresholds:
    """Automatic gates a new generator version must pass to become ``candidate`` (lower FID∞ / KID is better)."""

    max_fid_inf: float  # bound on fid_inf, FID extrapolated to infinitely many faces (FID at N falls with N)
    max_kid: float | None = None  # bound on kid_mean; None: KID not gated
    require_beats_champion: bool = True  # significantly better under one protocol (ComparisonRule), when one exists
    fairness: FairnessThresholds | None = None  # None: fairness not gated


def _metric(metrics: Mapping[str, float], name: str, whose: str) -> float:
    """A metric that must be present and a real number: a missing or NaN metric never counts as passing."""
    if name not in metrics or metrics[name] is None:
        raise ValueError(f"{whose} metric {name!r} is missing (have {sorted(metrics)}); cannot decide the gate")
    value = float(metrics[name])
    if math.isnan(value):
        raise ValueError(f"{whose} metric {name!r} is NaN; cannot decide the gate")
    return value


def decide_gate(
    metrics: Mapping[str, float],
    thresholds: GateThresholds,
    comparison: ChampionComparison | None,
    fairness_report: Mapping[str, Mapping[str, Any]] | None = None,
) -> GateDecision:
    """Pass iff fid_inf ≤ max_fid_inf, kid_mean ≤ max_kid (when set), the comparison with the champion (when required
    and a champion exists) found the candidate significantly better, and (when gated) ``fairness_report`` is within
    :class:`FairnessThresholds` (:func:`fairness_violations`).

    A champion that could not be compared fails the rule ("not comparable: …"): no comparison, no ``candidate``.
    Raises ``ValueError`` when a candidate metric a rule needs is missing or NaN.
    """
    reasons: list[str] = []
    fid_inf = _metric(metrics, "fid_inf", "candidate")
    if fid_inf > thresholds.max_fid_inf:
        reasons.append(f"FID∞ (fid_inf) {fid_inf:.4g} is above the limit {thresholds.max_fid_inf:.4g}")
    if thresholds.max_kid is not None:
        kid = _metric(metrics, "kid_mean", "candidate")
        if kid > thresholds.max_kid:
            reasons.append(f"kid_mean {kid:.4g} is above the limit {thresholds.max_kid:.4g}")
    if thresholds.require_beats_champion and comparison is not None and not comparison.better:
        reasons.append(comparison.summary())
    if thresholds.fairness is not None:
        reasons.extend(fairness_violations(fairness_report, thresholds.fairness))
    return GateDecision(passed=not reasons, reasons=reasons)


def _ci(summary: Mapping[str, Any], key: str) -> str:
    return f" (95% CI {summary[key][0]:.3f}–{summary[key][1]:.3f})" if key in summary else ""


def fairness_violations(report: Mapping[str, Mapping[str, Any]] | None, thresholds: FairnessThresholds) -> list[str]:
    """One readable line per failed fairness gate (empty = passed), on a ``fairness_report``'s corrected figures.

    An unmeasured gated attribute fails: a gate that cannot be checked does not pass.
    """
    reasons = []
    for attribute, limit in thresholds.max_tv.items():
        generated = ((report or {}).get(attribute) or {}).get("generated") or {}
        if "tv" not in generated:
            reasons.append(f"{attribute}: fairness not measured against a target, cannot pass its TV gate")
            continue
        what = "corrected " if "corrected" in generated else "uncorrected "
        if generated["tv"] > limit:
            reasons.append(
                f"{attribute}: {what}TV distance {generated['tv']:.3f}{_ci(generated, 'tv_ci')} to the "
                f"target is above {limit:.3f}"
            )
        floor = thresholds.min_representation_ratio
        if floor is not None and generated["representation_ratio"] < floor:
            reasons.append(
                f"{attribute}: {what}representation ratio {generated['representation_ratio']:.3f}"
                f"{_ci(generated, 'representation_ratio_ci')} is below {floor:.3f}"
            )
    return reasons


@dataclass(frozen=True)
class HumanEvalRequirement:
    """Minimum point estimates raters must give, each over at least ``min_ratings`` answered ratings of its task.

    ``min_fool_rate`` bounds the real_vs_generated fool rate, ``min_win_rate`` the candidate_vs_champion win rate;
    None leaves that rate ungated, but at least one must be set.
    """

    min_fool_rate: float | None = None
    min_win_rate: float | None = None
    min_ratings: int = 30

    def __post_init__(self) -> None:
        for name in ("min_fool_rate", "min_win_rate"):
            value = getattr(self, name)
            is_share = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
            if value is not None and not is_share:
                raise ValueError(f"{name} must be a share between 0 and 1 or None, got {value!r}")
        if self.min_fool_rate is None and self.min_win_rate is None:
            raise ValueError("a human-eval requirement needs min_fool_rate or min_win_rate (or both)")
        if isinstance(self.min_ratings, bool) or not isinstance(self.min_ratings, int) or self.min_ratings < 1:
            raise ValueError(f"min_ratings must be a positive integer, got {self.min_ratings!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, *, has_champion: bool) -> HumanEvalRequirement | None:
        """``deploy_gate``'s ``human_eval_gate`` setting; None when it asks for nothing (the gate is not required).

        Without a champion the win rate is dropped: there are no candidate-vs-champion pairs to win.
        """
        if not config:
            return None
        settings = dict(config)
        if not has_champion:
            settings.pop("min_win_rate", None)
        if settings.get("min_fool_rate") is None and settings.get("min_win_rate") is None:
            return None
        return cls(**settings)

    def describe(self) -> str:
        """``fool rate >= 0.3, win rate >= 0.5, each over >= 30 answered ratings``."""
        minimums = {"fool rate": self.min_fool_rate, "win rate": self.min_win_rate}
        parts = [f"{name} >= {value:g}" for name, value in minimums.items() if value is not None]
        return ", ".join(parts) + f", each over >= {self.min_ratings} answered ratings"


def _rate_reasons(label: str, task: str, rate: Rate, minimum: float | None, min_ratings: int) -> list[str]:
    if minimum is None:
        return []
    if rate.n < min_ratings:
        return [f"human eval: only {rate.n} answered {task} rating(s), {min_ratings} required"]
    value = rate.hits / rate.n
    return [f"human eval: {label} {value:.4f} is below the required {minimum:g}"] if value < minimum else []


def decide_human_eval(results: HumanEvalResults, requirement: HumanEvalRequirement) -> GateDecision:
    """Pass iff each required rate has ≥ ``min_ratings`` answered ratings and its point estimate ≥ the minimum."""
    reasons = _rate_reasons(
        "fool rate", "real_vs_generated", results.fool, requirement.min_fool_rate, requirement.min_ratings
    ) + _rate_reasons(
        "win rate", "candidate_vs_champion", results.win, requirement.min_win_rate, requirement.min_ratings
    )
    return GateDecision(passed=not reasons, reasons=reasons)


@dataclass(frozen=True)
class AttributePromotion:
    """Whether a new attribute-model version takes the alias (``promote``) and how it compared with the baseline."""

    promote: bool
    beats_baseline: bool  # False with no baseline: nothing was beaten, but nothing was asked either
    reasons: list[str] = field(default_factory=list)  # one line per baseline figure not beaten


def decide_attribute_promotion(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> AttributePromotion:
    """Promote iff every baseline figure (``{gender_accuracy: 0.9, …}``) is beaten by ``holdout_<name>`` in
    ``metrics``, strictly; an empty baseline promotes every version. A missing or NaN figure beats nothing."""
    reasons = []
    for name, value in baseline.items():
        measured = float(metrics.get(f"holdout_{name}", math.nan))
        if not measured > value:
            reasons.append(f"holdout_{name} {measured:.4f} does not beat the baseline {value:.4f}")
    beats = bool(baseline) and not reasons
    return AttributePromotion(promote=beats or not baseline, beats_baseline=beats, reasons=reasons)


@dataclass(frozen=True)
class Acceptance:
    """Whether a version may be the served champion (``ok``), and why or why not, in one line (``reason``)."""

    ok: bool
    reason: str


def champion_acceptable(tags: Mapping[str, str] | None) -> Acceptance:
    """A version may be champion iff its ``gate_status`` is ``passed``, or a named person overrode the gates with a
    reason: non-empty ``approved_by`` and ``approval_forced_reason`` (``facegen approve --force --reason`` writes
    both; a person may set them by hand in the MLflow UI). Anything else, a version never gated included, is refused.
    """
    tags = tags or {}
    status = tags.get(GATE_STATUS_TAG)
    if status == GATE_PASSED:
        return Acceptance(True, f"{GATE_STATUS_TAG} is {GATE_PASSED!r}")
    gate = f"{GATE_STATUS_TAG} is {status!r}" if status else f"it has no {GATE_STATUS_TAG} (never gated)"
    override = {tag: (tags.get(tag) or "").strip() for tag in (APPROVED_BY_TAG, APPROVAL_FORCED_REASON_TAG)}
    if all(override.values()):
        return Acceptance(
            True,
            f"{gate}, approval forced by {override[APPROVED_BY_TAG]}: {override[APPROVAL_FORCED_REASON_TAG]}",
        )
    missing = " and ".join(tag for tag, value in override.items() if not value)
    return Acceptance(False, f"{gate} and no forced approval ({missing} not set)")
