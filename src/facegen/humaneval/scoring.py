"""Scores of checked ratings: fool rate and candidate win rate, with Wilson 95 % intervals and per-rater rates.

- Fool rate (as in HYPE): the share of answered ``real_vs_generated`` pairs where the rater took the generated face
  for the real photograph. 50 % means raters cannot tell generated from real; 0 % means they always can.
- Win rate: the share of answered ``candidate_vs_champion`` pairs where the rater found the candidate's face the
  more realistic one. 50 % means no visible difference from the champion.

The interval is the Wilson score interval over all answered ratings taken as independent trials. They are not
independent: one rater's answers share that rater's eye and strictness (and raters see the same pairs), so when
raters differ the true uncertainty is wider than this interval. The per-rater rates and counts are reported beside
it so that spread is visible; with few raters, read the interval as a lower bound on the uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import binomtest

from facegen.humaneval.export import CANDIDATE_VS_CHAMPION, REAL_VS_GENERATED
from facegen.humaneval.ratings import AnswerKey, Rating

CONFIDENCE = 0.95


def wilson_interval(hits: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of ``hits`` successes in ``n`` trials (``n`` ≥ 1); stays inside [0, 1] at 0 and n."""
    interval = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``n`` answered ratings; no value or interval when nothing was answered."""

    hits: int
    n: int

    @property
    def value(self) -> float | None:
        return self.hits / self.n if self.n else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson_interval(self.hits, self.n) if self.n else None


@dataclass(frozen=True)
class RaterResult:
    """One rater's rates and how many pairs they left blank."""

    rater: str
    fool: Rate
    win: Rate
    n_unanswered: int


@dataclass(frozen=True)
class HumanEvalResults:
    """Scores of one import: pooled rates over all raters plus each rater's own."""

    set_id: str
    fool: Rate
    win: Rate
    n_unanswered: int
    per_rater: tuple[RaterResult, ...]

    @property
    def n_ratings(self) -> int:
        """Answered ratings, both tasks."""
        return self.fool.n + self.win.n

    @property
    def n_raters(self) -> int:
        """Raters who answered at least one pair."""
        return sum(1 for rater in self.per_rater if rater.fool.n + rater.win.n)


def _rates(key: AnswerKey, ratings: Sequence[Rating]) -> tuple[Rate, Rate, int]:
    """(fool, win, unanswered) over ``ratings``; a hit is choosing the side of the generated / candidate face."""
    hits = {REAL_VS_GENERATED: 0, CANDIDATE_VS_CHAMPION: 0}
    answered = {REAL_VS_GENERATED: 0, CANDIDATE_VS_CHAMPION: 0}
    for rating in ratings:
        if not rating.choice:
            continue
        pair = key.pairs[rating.pair_id]
        answered[pair.task] += 1
        hits[pair.task] += rating.choice == pair.key_side
    unanswered = sum(1 for rating in ratings if not rating.choice)
    return (
        Rate(hits[REAL_VS_GENERATED], answered[REAL_VS_GENERATED]),
        Rate(hits[CANDIDATE_VS_CHAMPION], answered[CANDIDATE_VS_CHAMPION]),
        unanswered,
    )


def score_ratings(key: AnswerKey, ratings: Sequence[Rating]) -> HumanEvalResults:
    """Pooled and per-rater rates of ratings checked by :func:`facegen.humaneval.ratings.load_ratings`."""
    by_rater: dict[str, list[Rating]] = {}
    for rating in ratings:
        by_rater.setdefault(rating.rater, []).append(rating)
    per_rater = tuple(RaterResult(rater, *_rates(key, rows)) for rater, rows in sorted(by_rater.items()))
    return HumanEvalResults(key.set_id, *_rates(key, ratings), per_rater=per_rater)


def format_rate(rate: Rate) -> str:
    """``0.4375`` (4 decimals), or ``n/a`` when nothing was answered."""
    return "n/a" if rate.value is None else f"{rate.value:.4f}"


def format_ci(rate: Rate) -> str:
    """``[0.2313, 0.6638]``, or ``n/a`` when nothing was answered."""
    return "n/a" if rate.ci95 is None else "[{:.4f}, {:.4f}]".format(*rate.ci95)


PER_RATER_COLUMNS = [
    "rater",
    "fool_rate",
    "fooled",
    "n_real_vs_generated",
    "win_rate",
    "wins",
    "n_candidate_vs_champion",
    "n_unanswered",
]


def per_rater_rows(results: HumanEvalResults) -> list[dict[str, str | int]]:
    """The per-rater table (one row per rater, :data:`PER_RATER_COLUMNS`)."""
    return [
        {
            "rater": rater.rater,
            "fool_rate": format_rate(rater.fool),
            "fooled": rater.fool.hits,
            "n_real_vs_generated": rater.fool.n,
            "win_rate": format_rate(rater.win),
            "wins": rater.win.hits,
            "n_candidate_vs_champion": rater.win.n,
            "n_unanswered": rater.n_unanswered,
        }
        for rater in results.per_rater
    ]


def summary_lines(results: HumanEvalResults) -> list[str]:
    """A readable summary: pooled rates with intervals, then one line per rater."""
    lines = [
        f"set {results.set_id}: {results.n_ratings} answered rating(s) by {results.n_raters} rater(s), "
        f"{results.n_unanswered} left blank",
        f"fool rate {format_rate(results.fool)}  95% CI {format_ci(results.fool)}  "
        f"({results.fool.hits} of {results.fool.n} real_vs_generated answers took the generated face for real; "
        "0.5 = indistinguishable)",
        f"win rate  {format_rate(results.win)}  95% CI {format_ci(results.win)}  "
        f"({results.win.hits} of {results.win.n} candidate_vs_champion answers preferred the candidate)",
        "per rater (the interval treats all answers as independent; one rater's are not):",
    ]
    width = max((len(rater.rater) for rater in results.per_rater), default=0)
    lines += [
        f"  {rater.rater:<{width}}  fool {format_rate(rater.fool)} ({rater.fool.hits}/{rater.fool.n})  "
        f"win {format_rate(rater.win)} ({rater.win.hits}/{rater.win.n})  blank {rater.n_unanswered}"
        for rater in results.per_rater
    ]
    return lines
