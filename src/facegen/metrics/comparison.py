"""Comparing a candidate generator with the champion: under one evaluation protocol, and beyond noise.

- :class:`EvaluationProtocol` names everything a fidelity figure depends on (real reference set, resolution, feature
  extractor and weights, number of generated faces, their seeds and requested labels, KID settings). Two figures are
  comparable only when their protocols are equal; the short :attr:`~EvaluationProtocol.id` says so at a glance.
  :func:`protocol_features` is the one way a generator is scored under a protocol, so a champion re-scored later
  gets exactly the faces (same seeds, same requested labels) and features a candidate got.
- :func:`bootstrap_difference` puts a bootstrap interval on metric(candidate) − metric(champion); a candidate is
  better only when the whole interval lies below zero (:attr:`ChampionComparison.better`). The compared metric is a
  parameter of :class:`ComparisonRule` (a name in :data:`COMPARED_METRICS`).

The rule in words, and why it is written this way: docs/evaluation.md, "Comparing with the champion".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facegen.metrics.features import RealFeatures, file_sha256, inception_features
from facegen.metrics.samples import EvaluationSample, evaluation_faces

#: Hex digits of the protocol hash kept as its id (48 bits: no collision among a registry's protocols).
PROTOCOL_ID_LENGTH = 12
#: Rows of a kernel matrix computed at once; bounds memory at BLOCK × (set size) float64 values.
KERNEL_BLOCK_ROWS = 1024
#: Fewer replicates cannot place a 95 % percentile bound on more than a handful of draws.
MIN_BOOTSTRAP = 100


class NotComparable(Exception):
    """A generator cannot be scored under a protocol (other resolution, other conditioning); the message says why."""


@dataclass(frozen=True)
class EvaluationProtocol:
    """What a generator's fidelity figures were measured under; equal protocols make figures comparable."""

    real_dataset_hash: str  # RealFeatures.dataset_hash of the real reference set
    real_count: int  # number of real faces behind its features
    resolution: int  # side of the generated (and real) faces
    extractor: str  # feature extractor and layer, e.g. inception-v3-compat/2048
    weights_sha256: str  # of the extractor's weights file
    num_generated: int  # generated faces scored
    seed: int  # face i comes from seed ``seed + i``
    requests: dict[str, dict[str, float] | None]  # conditioned attribute → target shares of its requests ({}: none)
    kid_subset_size: int  # KID subsets as configured for kid_mean / kid_std
    kid_subsets: int

    @classmethod
    def for_generator(
        cls,
        generator: nn.Module,
        real: RealFeatures,
        *,
        num_generated: int,
        seed: int,
        targets: Mapping[str, Mapping[str, float]],
        kid_subset_size: int,
        kid_subsets: int,
    ) -> EvaluationProtocol:
        """The protocol a generator is evaluated under: requests only for the attributes it is conditioned on."""
        requests = {attribute: _shares(targets.get(attribute)) for attribute in generator.label_dims}
        return cls(
            real.dataset_hash,
            real.count,
            real.resolution,
            real.extractor,
            real.weights_sha256,
            int(num_generated),
            int(seed),
            requests,
            int(kid_subset_size),
            int(kid_subsets),
        )

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal protocols give equal text, hence equal ids."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EvaluationProtocol:
        """A protocol as recorded in a version's ``eval_protocol`` tag."""
        return cls(**json.loads(text))

    @property
    def id(self) -> str:
        """Short SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:PROTOCOL_ID_LENGTH]

    def check_real(self, real: RealFeatures) -> None:
        """Refuse real features other than the protocol's reference set (a wrong cache would fake a comparison)."""
        expected = {
            "dataset_hash": self.real_dataset_hash,
            "count": self.real_count,
            "resolution": self.resolution,
            "extractor": self.extractor,
            "weights_sha256": self.weights_sha256,
        }
        wrong = {key: (value, real.identity[key]) for key, value in expected.items() if real.identity[key] != value}
        if wrong:
            raise ValueError(f"real features are not protocol {self.id}'s reference set: {wrong} (expected, found)")

    def unscorable_reason(self, generator: nn.Module) -> str | None:
        """Why ``generator`` cannot produce this protocol's faces (a phrase after its name), or None when it can."""
        side = generator.resolution
        if side != self.resolution:
            return f"draws {side}×{side} faces, the protocol scores {self.resolution}×{self.resolution}"
        conditioned, requested = sorted(generator.label_dims), sorted(self.requests)
        if conditioned != requested:
            return f"is conditioned on {conditioned or 'nothing'}, the protocol requests {requested or 'no labels'}"
        return None


def _shares(target: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if target is None else {group: float(share) for group, share in target.items()}


def protocol_features(
    generator: nn.Module,
    protocol: EvaluationProtocol,
    *,
    weights_path: Path,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[EvaluationSample, np.ndarray]:
    """The protocol's faces from ``generator`` and their features: what evaluation scores and re-scoring repeats.

    Raises :class:`NotComparable` when the generator cannot produce them, ``ValueError`` for other weights.
    """
    reason = protocol.unscorable_reason(generator)
    if reason is not None:
        raise NotComparable(reason)
    if file_sha256(weights_path) != protocol.weights_sha256:
        raise ValueError(f"{weights_path} are not the extractor weights of protocol {protocol.id}")
    targets = {attribute: target for attribute, target in protocol.requests.items() if target is not None}
    sample = evaluation_faces(generator, protocol.num_generated, seed=protocol.seed, targets=targets, device=device)
    features = inception_features(sample.faces, weights_path=weights_path, device=device, progress=progress)
    return sample, features


# --- the bootstrap rule -------------------------------------------------------------------------------------------

#: (candidate, champion, real) features → statistic of replicate weights: B×n_c, B×n_h, B×n_r multiplicities in,
#: B values of metric(candidate) − metric(champion) out (all-ones rows give the point estimate).
DifferenceStatistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel k(x, y) = (xᵀy / d + 1)³."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _weighted_kernel_sums(x: np.ndarray, y: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Σᵢⱼ wx[b, i] k(xᵢ, yⱼ) wy[b, j] for every row b, computing each kernel block once for all rows."""
    totals = np.zeros(len(wx))
    for start in range(0, len(x), KERNEL_BLOCK_ROWS):
        stop = start + KERNEL_BLOCK_ROWS
        totals += np.einsum("bi,ib->b", wx[:, start:stop], _polynomial_kernel(x[start:stop], y) @ wy.T)
    return totals


def _within_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean of k over pairs of distinct samples: the unbiased within-set term of MMD².

    A resample draws a face several times; pairs of a face with its own copies are left out, as i = j is in the
    unbiased estimator, so a replicate is the same estimator on the resampled set.
    """
    diagonal = (np.einsum("ij,ij->i", x, x) / x.shape[1] + 1.0) ** 3
    pairs = w.sum(axis=1) ** 2 - (w**2).sum(axis=1)
    if (pairs <= 0).any():
        raise ValueError(f"a bootstrap replicate drew a single distinct sample of {len(x)}: the set is too small")
    return (_weighted_kernel_sums(x, x, w, w) - (w**2) @ diagonal) / pairs


def _cross_mean(x: np.ndarray, y: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    return _weighted_kernel_sums(x, y, wx, wy) / (wx.sum(axis=1) * wy.sum(axis=1))


def kid_difference(candidate: np.ndarray, champion: np.ndarray, real: np.ndarray) -> DifferenceStatistic:
    """KID(candidate) − KID(champion): unbiased MMD² on the full sets, cubic polynomial kernel.

    The real set's within term is common to both MMD²s and cancels, so only candidate–candidate, champion–champion
    and each–real kernels are computed.
    """
    c, h, r = (np.asarray(features, dtype=np.float64) for features in (candidate, champion, real))

    def statistic(wc: np.ndarray, wh: np.ndarray, wr: np.ndarray) -> np.ndarray:
        return _within_mean(c, wc) - _within_mean(h, wh) - 2.0 * (_cross_mean(c, r, wc, wr) - _cross_mean(h, r, wh, wr))

    return statistic


#: Metrics the rule can compare: name → statistic of their difference (lower metric = better generator).
COMPARED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], DifferenceStatistic]] = {
    "kid": kid_difference,
}


@dataclass(frozen=True)
class ComparisonRule:
    """How "better than the champion" is decided; these defaults are the rule's only written defaults."""

    metric: str = "kid"  # a name in COMPARED_METRICS
    confidence: float = 0.95  # two-sided percentile interval
    bootstrap: int = 1000  # replicates (real, candidate and champion sets each resampled)
    seed: int = 0  # of the resampling, so a gate decision can be repeated

    def __post_init__(self) -> None:
        if self.metric not in COMPARED_METRICS:
            raise ValueError(f"cannot compare metric {self.metric!r}; choose from {sorted(COMPARED_METRICS)}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got {self.confidence}")
        if self.bootstrap < MIN_BOOTSTRAP:
            raise ValueError(f"bootstrap needs at least {MIN_BOOTSTRAP} replicates, got {self.bootstrap}")


@dataclass(frozen=True)
class MetricDifference:
    """metric(candidate) − metric(champion) with its bootstrap interval."""

    metric: str
    estimate: float
    low: float
    high: float
    confidence: float
    replicates: int

    @property
    def significantly_lower(self) -> bool:
        """The whole interval lies below zero: the candidate's metric is lower beyond resampling noise."""
        return self.high < 0.0

    def describe(self) -> str:
        return (
            f"{self.metric} difference {self.estimate:+.4g} (candidate − champion), {self.confidence:.0%} CI "
            f"[{self.low:+.4g}, {self.high:+.4g}] over {self.replicates} bootstrap replicates"
        )


def _check_features(features: np.ndarray, name: str) -> None:
    if not isinstance(features, np.ndarray) or features.ndim != 2 or len(features) < 2:
        raise ValueError(f"{name} must be an N×D array with N ≥ 2, got {getattr(features, 'shape', type(features))}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name} contains non-finite values")


def _multiplicities(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """One all-ones row (the sets as they are) above ``replicates`` rows of resampling counts (n draws, replaced)."""
    return np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=replicates)]).astype(np.float64)


def bootstrap_difference(
    rule: ComparisonRule, candidate: np.ndarray, champion: np.ndarray, real: np.ndarray
) -> MetricDifference:
    """Point estimate and percentile interval of metric(candidate) − metric(champion), all three sets resampled."""
    sets = {"candidate features": candidate, "champion features": champion, "real features": real}
    for name, features in sets.items():
        _check_features(features, name)
    if len({features.shape[1] for features in sets.values()}) != 1:
        raise ValueError(f"feature widths differ: { {name: f.shape[1] for name, f in sets.items()} }")
    rng = np.random.default_rng(rule.seed)
    weights = [_multiplicities(rng, len(features), rule.bootstrap) for features in sets.values()]
    values = COMPARED_METRICS[rule.metric](candidate, champion, real)(*weights)
    if not np.isfinite(values).all():
        raise RuntimeError(f"non-finite {rule.metric} differences in the bootstrap")
    alpha = 1.0 - rule.confidence
    low, high = np.quantile(values[1:], [alpha / 2, 1.0 - alpha / 2])
    return MetricDifference(rule.metric, float(values[0]), float(low), float(high), rule.confidence, rule.bootstrap)


# --- the outcome ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionComparison:
    """A candidate against the champion under the candidate's protocol: a measured difference, or why there is none."""

    champion_version: str
    protocol_id: str  # the candidate's protocol, under which both were scored
    champion_protocol_id: str | None  # the protocol the champion was evaluated under when registered
    rescored: bool  # the champion's faces were drawn and scored again for this comparison
    difference: MetricDifference | None = None
    not_comparable: str | None = None  # why no difference could be measured

    def __post_init__(self) -> None:
        if (self.difference is None) == (self.not_comparable is None):
            raise ValueError("a comparison has either a difference or a not-comparable reason")

    @property
    def better(self) -> bool:
        """The candidate beats the champion: comparable, and significantly lower on the rule's metric."""
        return self.difference is not None and self.difference.significantly_lower

    def summary(self) -> str:
        """One line for the gate reasons and the run: the difference and interval, or why none was measured."""
        if self.difference is None:
            return f"not comparable: champion v{self.champion_version} {self.not_comparable}"
        verdict = "significantly better than" if self.better else "not significantly better than"
        return f"{self.difference.describe()}: {verdict} champion v{self.champion_version}"

    def record(self) -> dict[str, Any]:
        """The comparison as JSON-able data (the version's ``champion_comparison`` tag)."""
        return {**asdict(self), "better": self.better, "summary": self.summary()}
