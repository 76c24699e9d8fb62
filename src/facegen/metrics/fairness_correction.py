"""Correcting the demographics of generated faces for the classifier's own errors.

The shares the attribute classifier reports for generated faces are not the generator's shares: a classifier that
reads 30 % of real "Others" faces as "White" makes a perfectly balanced generator look White-heavy. With the
classifier's confusion matrix on held-out real faces at the generator's resolution, M[t, j] = P(predicted j | true t),
the expected predicted shares are q = Mᵀ p for true shares p. We estimate p by inverting that relation
(confusion-matrix / "black box shift" correction: Buck, Gart & Sherman 1966; Lipton, Wang & Smola, "Detecting and
Correcting for Label Shift with Black Box Predictors", ICML 2018, eq. 3), solved as least squares on the probability
simplex so that noise cannot produce negative shares (equal to plain inversion whenever that lands in the simplex).

The assumption (the same one BBSE makes): given the true attribute, the classifier errs on generated faces as it
errs on real faces at that resolution. Faces far from real ones break it; docs/evaluation.md says how to read that.

Uncertainty: a bootstrap that resamples both sources of noise — the generated faces (within each requested cell,
matching the stratified design) and the held-out faces behind each confusion row (multinomial per row) — and
recomputes everything; 95 % percentile intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

#: Weight of the "shares sum to 1" row in the constrained least squares (large = the constraint holds to ~1e-9).
_SUM_WEIGHT = 1e3
DEFAULT_BOOTSTRAP = 500
DEFAULT_CONFIDENCE = 0.95


def error_rates(confusion: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Row-normalised confusion: M[t, j] = P(predicted j | true t). A group with no held-out face cannot be
    corrected for, so it is an error naming the group."""
    counts = np.asarray(confusion, dtype=np.float64)
    assert counts.shape == (len(groups), len(groups)), f"confusion {counts.shape} for {len(groups)} groups"
    support = counts.sum(axis=1)
    empty = [g for g, s in zip(groups, support) if s == 0]
    if empty:
        raise ValueError(f"the classifier's held-out set has no faces of {empty}: its errors there are unknown")
    return counts / support[:, None]


def corrected_shares(observed: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """True shares p on the simplex minimising ‖Mᵀp − q‖² for observed predicted shares q."""
    observed = np.asarray(observed, dtype=np.float64)
    k = len(observed)
    system = np.vstack([rates.T, _SUM_WEIGHT * np.ones((1, k))])
    shares, _residual = nnls(system, np.concatenate([observed, [_SUM_WEIGHT]]))
    return shares / shares.sum()


def tv_and_ratio(shares: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """TV distance ½Σ|p − t| and representation ratio min/max of p/t over groups with a positive target."""
    tv = 0.5 * float(np.abs(shares - target).sum())
    relative = shares[target > 0] / target[target > 0]
    return tv, float(relative.min() / relative.max()) if relative.max() > 0 else 0.0


@dataclass(frozen=True)
class CorrectedAttribute:
    """Raw and corrected shares of one attribute with bootstrap intervals; what the gate reads."""

    groups: list[str]
    raw: np.ndarray  # predicted shares
    corrected: np.ndarray  # error-corrected shares (point estimate: the gate decides on it)
    corrected_ci: np.ndarray  # K×2 interval per group
    tv: float
    tv_ci: tuple[float, float]
    ratio: float
    ratio_ci: tuple[float, float]

    def to_dict(self) -> dict:
        return {
            "corrected": dict(zip(self.groups, map(float, self.corrected))),
            "corrected_ci": {g: [float(lo), float(hi)] for g, (lo, hi) in zip(self.groups, self.corrected_ci)},
            "tv": self.tv, "tv_ci": list(self.tv_ci),
            "representation_ratio": self.ratio, "representation_ratio_ci": list(self.ratio_ci),
        }  # fmt: skip


def _indices(labels: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    lookup = {g: i for i, g in enumerate(groups)}
    unknown = sorted(set(labels.tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the vocabulary {list(groups)}")
    return np.array([lookup[v] for v in labels.tolist()], dtype=np.int64)


def correct_attribute(
    predicted: np.ndarray,
    groups: Sequence[str],
    confusion: np.ndarray,
    target: Mapping[str, float],
    *,
    strata: np.ndarray | None = None,  # requested cell per face: the bootstrap resamples within cells
    bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> CorrectedAttribute:
    """Corrected shares of one attribute from the classifier's predictions, with bootstrap intervals."""
    groups = list(groups)
    index = _indices(np.asarray(predicted, dtype=object), groups)
    if len(index) == 0:
        raise ValueError("no predictions: shares of an empty set are undefined")
    counts = np.asarray(confusion, dtype=np.int64)
    rates = error_rates(counts, groups)
    wanted = np.array([float(target.get(g, 0.0)) for g in groups])
    raw = np.bincount(index, minlength=len(groups)) / len(index)
    point = corrected_shares(raw, rates)
    tv, ratio = tv_and_ratio(point, wanted)

    rng = np.random.default_rng(seed)
    cells = [np.arange(len(index))] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    draws = np.empty((bootstrap, len(groups)))
    for b in range(bootstrap):
        sample = np.concatenate([rng.choice(cell, size=len(cell), replace=True) for cell in cells])
        q = np.bincount(index[sample], minlength=len(groups)) / len(sample)
        resampled = np.stack([rng.multinomial(row.sum(), row / row.sum()) for row in counts])
        draws[b] = corrected_shares(q, error_rates(resampled, groups))
    alpha = (1 - confidence) / 2
    figures = np.array([tv_and_ratio(d, wanted) for d in draws])
    interval = lambda values: tuple(float(v) for v in np.quantile(values, [alpha, 1 - alpha]))  # noqa: E731
    return CorrectedAttribute(
        groups=groups, raw=raw, corrected=point,
        corrected_ci=np.quantile(draws, [alpha, 1 - alpha], axis=0).T,
        tv=tv, tv_ci=interval(figures[:, 0]), ratio=ratio, ratio_ci=interval(figures[:, 1]),
    )  # fmt: skip


def perfect_generator_pass_rate(
    confusion: np.ndarray,
    groups: Sequence[str],
    target: Mapping[str, float],
    n: int,
    *,
    max_tv: float,
    min_ratio: float | None,
    draws: int = 200,
    calibration_noise: bool = False,
    seed: int = 0,
) -> float:
    """How often a generator that draws exactly what is asked passes this attribute's gates with ``n`` stratified
    requests, its faces read with the classifier's measured errors and corrected with them.

    ``calibration_noise=False`` (how the sample size is chosen): the measured confusion is taken as the truth, so
    only the n faces' classification noise remains — the part more faces can remove. ``True`` also redraws the
    held-out faces behind the confusion matrix (a parametric bootstrap of its rows): the part that only a larger
    held-out set or a better classifier can remove. docs/evaluation.md reports both.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    rates = error_rates(counts, list(groups))
    wanted = np.array([float(target.get(g, 0.0)) for g in groups])
    per_group = np.floor(wanted * n).astype(np.int64)
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(draws):
        predicted = sum(rng.multinomial(m, rates[t]) for t, m in enumerate(per_group) if m)
        estimate = rates
        if calibration_noise:
            estimate = error_rates(np.stack([rng.multinomial(r.sum(), r / r.sum()) for r in counts]), list(groups))
        tv, ratio = tv_and_ratio(corrected_shares(predicted / predicted.sum(), estimate), wanted)
        passed += tv <= max_tv and (min_ratio is None or ratio >= min_ratio)
    return passed / draws
