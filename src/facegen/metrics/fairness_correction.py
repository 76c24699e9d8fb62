"""Correcting the demographics of generated faces for the classifier's own errors.

The shares the attribute classifier reports for generated faces are not the generator's shares: a classifier that
reads 30 % of real "Others" faces as "White" makes a perfectly balanced generator look White-heavy. Let M[t, j] be
the classifier's mean probability of group j over held-out real faces of true group t, at the generator's
resolution, and q the mean probability vector over the generated faces. Then q = Mᵀp for the generator's true
shares p, and p is estimated by inverting that relation on the probability simplex (least squares with p ≥ 0,
Σp = 1, which equals plain inversion whenever that lands in the simplex).

This is the confusion-matrix correction of Buck, Gart & Sherman (1966) / black-box shift estimation (Lipton, Wang &
Smola, ICML 2018, eq. 3) in its probabilistic form ("probabilistic adjusted classify and count", Bella et al.,
ICDM Workshops 2010): averaging probabilities instead of counting argmax labels carries more of what the classifier
knows, and on our held-out faces at 32 px it cut the noise of the corrected age-bin shares 2.7× at the same number
of faces (docs/evaluation.md). The assumption (BBSE's): given the true attribute, the classifier reads generated
faces as it reads real faces at that resolution. Faces far from real ones break it; read raw and corrected together.

Uncertainty: a bootstrap that resamples both sources of noise — the generated faces (within each requested cell,
matching the stratified design) and the held-out faces behind M (within each true group) — and recomputes
everything; percentile intervals.
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


@dataclass(frozen=True)
class HeldOut:
    """The classifier on held-out real faces of one attribute at one resolution: true group index per face and its
    predicted probabilities (faces without a label for the attribute are left out)."""

    truth: np.ndarray  # int, one per face
    probabilities: np.ndarray  # faces × groups

    def __post_init__(self) -> None:
        assert self.probabilities.ndim == 2 and len(self.truth) == len(self.probabilities), "one row per face"

    @classmethod
    def from_record(cls, record: Mapping) -> HeldOut:
        truth = np.asarray(record["truth"], dtype=np.int64)
        return cls(truth, np.asarray(record["probabilities"], dtype=np.float64).reshape(len(truth), -1))

    @property
    def confusion(self) -> np.ndarray:
        """Counts[true, argmax prediction]."""
        k = self.probabilities.shape[1]
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.truth, self.probabilities.argmax(1)), 1)
        return matrix

    def by_group(self, groups: Sequence[str]) -> list[np.ndarray]:
        """Face indices of each true group; a group without held-out faces cannot be corrected for: an error."""
        members = [np.flatnonzero(self.truth == t) for t in range(len(groups))]
        empty = [g for g, m in zip(groups, members) if len(m) == 0]
        if empty:
            raise ValueError(f"the classifier's held-out set has no faces of {empty}: its errors there are unknown")
        return members


def mean_probabilities(held_out: HeldOut, members: list[np.ndarray]) -> np.ndarray:
    """M[t, j]: mean probability of group j over the held-out faces of true group t."""
    return np.stack([held_out.probabilities[m].mean(axis=0) for m in members])


def corrected_shares(observed: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """True shares p on the simplex minimising ‖Mᵀp − q‖² for observed (mean predicted) shares q."""
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
    """Corrected shares of one attribute with bootstrap intervals; what the gate reads."""

    groups: list[str]
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
            "tv": self.tv,
            "tv_ci": list(self.tv_ci),
            "representation_ratio": self.ratio,
            "representation_ratio_ci": list(self.ratio_ci),
        }


def _resample(members: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])


def correct_attribute(
    probabilities: np.ndarray,
    groups: Sequence[str],
    held_out: HeldOut,
    target: Mapping[str, float],
    *,
    strata: np.ndarray | None = None,  # requested cell per face: the bootstrap resamples within cells
    bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> CorrectedAttribute:
    """Corrected shares of one attribute from the classifier's probabilities on generated faces (faces × groups)."""
    groups = list(groups)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(groups) or len(probabilities) == 0:
        raise ValueError(f"expected faces × {len(groups)} probabilities, got {probabilities.shape}")
    members = held_out.by_group(groups)
    wanted = np.array([float(target.get(g, 0.0)) for g in groups])
    point = corrected_shares(probabilities.mean(axis=0), mean_probabilities(held_out, members))
    tv, ratio = tv_and_ratio(point, wanted)

    rng = np.random.default_rng(seed)
    cells = (
        [np.arange(len(probabilities))] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    )
    draws = np.empty((bootstrap, len(groups)))
    for b in range(bootstrap):
        observed = probabilities[_resample(cells, rng)].mean(axis=0)
        rows = [held_out.probabilities[rng.choice(m, size=len(m), replace=True)].mean(axis=0) for m in members]
        draws[b] = corrected_shares(observed, np.stack(rows))
    alpha = (1 - confidence) / 2
    figures = np.array([tv_and_ratio(d, wanted) for d in draws])
    interval = lambda values: tuple(float(v) for v in np.quantile(values, [alpha, 1 - alpha]))  # noqa: E731
    return CorrectedAttribute(
        groups=groups,
        corrected=point,
        corrected_ci=np.quantile(draws, [alpha, 1 - alpha], axis=0).T,
        tv=tv,
        tv_ci=interval(figures[:, 0]),
        ratio=ratio,
        ratio_ci=interval(figures[:, 1]),
    )


def perfect_generator_pass_rate(
    held_out: HeldOut,
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
    requests: its faces stand in as held-out real faces of the requested group (drawn with replacement), read by
    the classifier and corrected.

    ``calibration_noise=False`` (how the sample size is chosen): M is the held-out set's, as the gate uses it, so
    only the n faces' noise remains — the part more faces remove. ``True`` also redraws the held-out faces behind M:
    the part only a larger held-out set or a better classifier removes. docs/evaluation.md reports both.
    """
    members = held_out.by_group(list(groups))
    rates = mean_probabilities(held_out, members)
    wanted = np.array([float(target.get(g, 0.0)) for g in groups])
    per_group = np.floor(wanted * n).astype(np.int64)
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(draws):
        faces = np.concatenate([rng.choice(m, size=k, replace=True) for m, k in zip(members, per_group) if k])
        estimate = rates
        if calibration_noise:
            estimate = np.stack([held_out.probabilities[rng.choice(m, size=len(m))].mean(axis=0) for m in members])
        tv, ratio = tv_and_ratio(corrected_shares(held_out.probabilities[faces].mean(axis=0), estimate), wanted)
        passed += tv <= max_tv and (min_ratio is None or ratio >= min_ratio)
    return passed / draws
