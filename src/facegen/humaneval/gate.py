"""The human-eval gate: a version that passed the automatic gates waits for raters before it becomes ``candidate``.

Flow: deploy_gate calls :func:`require_human_eval` (instead of ``apply_gate``) for a version whose automatic gates
passed. The version gets ``gate_status`` = ``awaiting_human_eval`` and the requirement as ``human_eval.required.*``
tags; it holds no ``candidate`` alias, and ``approve_version`` refuses it (its gate_status is not ``passed``).
``facegen human-eval import`` scores the raters' answers and calls :func:`complete_human_eval_gate`, which turns
the version into passed + ``candidate`` or failed with reasons, through ``model_registry.apply_gate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from facegen.humaneval.scoring import HumanEvalResults, Rate
from facegen.registry.model_registry import (
    CANDIDATE_ALIAS,
    GATE_FAILED,
    GATE_PASSED,
    GATE_REASONS_TAG,
    GATE_STATUS_TAG,
    GateDecision,
    apply_gate,
)

#: ``gate_status`` of a version that passed the automatic gates and waits for :func:`complete_human_eval_gate`.
AWAITING_HUMAN_EVAL = "awaiting_human_eval"
MIN_FOOL_RATE_TAG = "human_eval.required.min_fool_rate"
MIN_WIN_RATE_TAG = "human_eval.required.min_win_rate"
MIN_RATINGS_TAG = "human_eval.required.min_ratings"


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

    def tags(self) -> dict[str, str]:
        """The requirement as version tags (a rate left ungated gets no tag)."""
        tags = {MIN_RATINGS_TAG: str(self.min_ratings)}
        if self.min_fool_rate is not None:
            tags[MIN_FOOL_RATE_TAG] = repr(float(self.min_fool_rate))
        if self.min_win_rate is not None:
            tags[MIN_WIN_RATE_TAG] = repr(float(self.min_win_rate))
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> HumanEvalRequirement:
        """The requirement recorded by :func:`require_human_eval`; ``ValueError`` when missing or malformed."""
        if MIN_RATINGS_TAG not in tags:
            raise ValueError(f"no {MIN_RATINGS_TAG} tag: the version records no human-eval requirement")

        def rate(tag: str) -> float | None:
            return float(tags[tag]) if tag in tags else None

        try:
            return cls(rate(MIN_FOOL_RATE_TAG), rate(MIN_WIN_RATE_TAG), int(tags[MIN_RATINGS_TAG]))
        except ValueError as error:
            recorded = {key: value for key, value in tags.items() if key.startswith("human_eval.required.")}
            raise ValueError(f"malformed human-eval requirement tags {recorded}: {error}") from error

    def describe(self) -> str:
        """``fool rate >= 0.3, win rate >= 0.5, each over >= 30 answered ratings``."""
        minimums = {"fool rate": self.min_fool_rate, "win rate": self.min_win_rate}
        parts = [f"{name} >= {value:g}" for name, value in minimums.items() if value is not None]
        return ", ".join(parts) + f", each over >= {self.min_ratings} answered ratings"


def require_human_eval(client: MlflowClient, version: ModelVersion, requirement: HumanEvalRequirement) -> None:
    """Hold a version whose automatic gates passed until raters' results arrive; never sets ``candidate``.

    Call it instead of ``apply_gate`` when the automatic decision passed. Records ``requirement`` as tags, sets
    ``gate_status`` = ``awaiting_human_eval`` with the reason in ``gate_reasons``, and takes ``candidate`` away
    should the version already hold it. Raises ``ValueError`` for a version whose gate_status is ``failed``.
    """
    name, number = version.name, version.version
    current = client.get_model_version(name, number)
    if (current.tags or {}).get(GATE_STATUS_TAG) == GATE_FAILED:
        raise ValueError(
            f"{name} version {number}: gate_status is 'failed'; only a version that passed the automatic gates can "
            "await human evaluation"
        )
    tags = requirement.tags()
    for key, value in tags.items():
        client.set_model_version_tag(name, number, key, value)
    for stale in ({MIN_FOOL_RATE_TAG, MIN_WIN_RATE_TAG} & set(current.tags or {})) - set(tags):  # an earlier one's
        client.delete_model_version_tag(name, number, stale)
    client.set_model_version_tag(name, number, GATE_STATUS_TAG, AWAITING_HUMAN_EVAL)
    client.set_model_version_tag(
        name, number, GATE_REASONS_TAG,
        f"automatic gates passed; awaiting human evaluation ({requirement.describe()}): "
        f"rate the human_eval set, then run `facegen human-eval import FILE... --version {number}`",
    )  # fmt: skip
    if CANDIDATE_ALIAS in (current.aliases or []):
        client.delete_registered_model_alias(name, CANDIDATE_ALIAS)


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
    )  # fmt: skip
    return GateDecision(passed=not reasons, reasons=reasons)


def complete_human_eval_gate(
    client: MlflowClient, version: ModelVersion, results: HumanEvalResults
) -> GateDecision | None:
    """Decide an awaiting version against its recorded requirement and apply the decision (``candidate`` if passed).

    Returns None, changing nothing, for a version that is not ``awaiting_human_eval``. A passing version older
    than the current ``candidate`` is marked passed but does not take the alias back from the newer one.
    """
    current = client.get_model_version(version.name, version.version)
    tags = current.tags or {}
    if tags.get(GATE_STATUS_TAG) != AWAITING_HUMAN_EVAL:
        return None
    decision = decide_human_eval(results, HumanEvalRequirement.from_tags(tags))
    holder = (client.get_registered_model(current.name).aliases or {}).get(CANDIDATE_ALIAS)
    if decision.passed and holder is not None and int(holder) > int(current.version):
        # Raters were slower than the next run: a newer version already passed, candidate stays with it.
        client.set_model_version_tag(current.name, current.version, GATE_STATUS_TAG, GATE_PASSED)
        client.set_model_version_tag(current.name, current.version, GATE_REASONS_TAG,
                                     f"all gates passed; {CANDIDATE_ALIAS} stays on newer version {holder}")  # fmt: skip
        return decision
    apply_gate(client, current, decision)
    return decision
