"""FID, KID and precision/recall of generated vs real faces, from InceptionV3 pool3 features.

The maths is torch-fidelity's own (``fid_features_to_statistics``/``fid_statistics_to_metric``,
``kid_features_to_metric``, ``prc_features_to_metric``), applied to features extracted once by
:mod:`facegen.metrics.features`: the real side can come from a cached :class:`~facegen.metrics.features.RealFeatures`
record, so evaluating a generator costs only its own samples' forward passes. :func:`compute_fidelity` is the
convenience path for two image sets. Precision/recall follow torch-fidelity's convention: precision = share of
generated samples inside the real manifold (quality), recall = share of real samples inside the generated one
(coverage). The Inception Score lives in :mod:`facegen.metrics.inception_score`: it needs a classifier, which
the offline FID network does not have. :func:`fid_infinity` is FID extrapolated to infinitely many generated faces
(Chong & Forsyth, CVPR 2020): FID at N is biased by ~k/N, so only FID∞ (or the unbiased KID) compares across N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.metric_fid import (
    KEY_METRIC_FID,
    fid_features_to_statistics,
    fid_statistics_to_metric,
)
from torch_fidelity.metric_kid import (
    KEY_METRIC_KID_MEAN,
    KEY_METRIC_KID_STD,
    kid_features_to_metric,
)
from torch_fidelity.metric_prc import (
    KEY_METRIC_F_SCORE,
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)

from facegen.devices import resolve_device
from facegen.metrics.features import check_images, inception_features

_DEFAULT_KID_SUBSET_SIZE = 1000
_DEFAULT_PRC_NEIGHBORHOOD = 3
#: torch-fidelity's default seed for KID subset draws, so values match its ``calculate_metrics``.
DEFAULT_SEED = 2020
#: FID∞'s fit as Chong & Forsyth's reference code (score_infinity.py) makes it: 15 subset sizes evenly spaced in N
#: from 5,000 to all 50,000 faces, i.e. from a tenth of the set to all of it.
FID_INF_POINTS = 15
FID_INF_MIN_FRACTION = 0.1


def _check_features(features: np.ndarray, name: str, min_count: int) -> None:
    if not isinstance(features, np.ndarray) or features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{name} must be an N×D float numpy array, got {getattr(features, 'shape', type(features))}")
    if len(features) < min_count:
        raise ValueError(f"{name} needs at least {min_count} samples, got {len(features)}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name} contains non-finite values")


def _min_samples(prc_neighborhood: int) -> int:
    """A covariance needs 2 samples; a k-NN radius needs k neighbours besides the sample itself."""
    return max(2, prc_neighborhood + 1)


def _fid(generated: torch.Tensor, real: torch.Tensor) -> float:
    """torch-fidelity's FID; statistics that overflowed are reported as such, not as a LinAlgError from eigvals."""
    statistics = [fid_features_to_statistics(features) for features in (generated, real)]
    if not all(np.isfinite(stat[key]).all() for stat in statistics for key in ("mu", "sigma")):
        raise RuntimeError("non-finite FID statistics (mean/covariance overflowed); features out of range?")
    return float(fid_statistics_to_metric(*statistics, False)[KEY_METRIC_FID])


def frechet_distance(generated_features: np.ndarray, real_features: np.ndarray) -> float:
    """FID alone from N×D feature arrays (the cheap number to track while training; no KID or k-NN radii)."""
    _check_features(generated_features, "generated_features", 2)
    _check_features(real_features, "real_features", 2)
    if generated_features.shape[1] != real_features.shape[1]:
        raise ValueError(f"feature widths differ: {generated_features.shape[1]} vs {real_features.shape[1]}")
    fid = _fid(torch.from_numpy(generated_features), torch.from_numpy(real_features))
    if not math.isfinite(fid):
        raise RuntimeError(f"non-finite FID for {len(generated_features)} vs {len(real_features)} samples")
    return fid


@dataclass(frozen=True)
class FIDInfinity:
    """FID∞ with the line it is read from: FID_N ≈ ``fid_inf`` + ``slope`` / N through the ``(sizes, fids)`` points."""

    fid_inf: float
    slope: float
    sizes: np.ndarray  # generated faces in each subset, ascending (the last is the whole set)
    fids: np.ndarray  # FID of each subset against all the real features


def _covariance_factor(centred: torch.Tensor) -> torch.Tensor:
    """F with F Fᵀ = the covariance of ``centred``'s rows, with min(n, d) columns (the centred rows, or Σ's eigh)."""
    count, width = centred.shape
    if count <= width:
        return centred.T / math.sqrt(count - 1)
    eigenvalues, vectors = torch.linalg.eigh(centred.T @ centred / (count - 1))
    return vectors * eigenvalues.clamp(min=0).sqrt()


def fid_infinity(
    generated_features: np.ndarray,
    real_features: np.ndarray,
    *,
    points: int = FID_INF_POINTS,
    min_fraction: float = FID_INF_MIN_FRACTION,
    seed: int = DEFAULT_SEED,
    device: str | torch.device | None = None,
) -> FIDInfinity:
    """FID∞ (Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020,
    sec. 3): FID of ``points`` random subsets of the generated features (drawn without replacement, seeded),
    sizes evenly spaced from ``min_fraction`` of the set to all of it, against all the real features; a least-squares
    line FID_N = FID∞ + k/N; FID∞ is its intercept at 1/N = 0.

    Cheap because no subset needs a d×d matrix square root: with F Fᵀ = Σ_real, Tr √(Σ_N Σ_real) is the sum of the
    singular values of the subset's centred rows times F, over √(N − 1) (Σ_N F Fᵀ and Fᵀ Σ_N F share their nonzero
    eigenvalues), so F and the projection of every generated row are computed once and a subset costs one Gram
    matrix of at most min(N, n_real, d) columns. The whole set's point is torch-fidelity's FID up to rounding.
    """
    _check_features(generated_features, "generated_features", 2)
    _check_features(real_features, "real_features", 2)
    if generated_features.shape[1] != real_features.shape[1]:
        raise ValueError(f"feature widths differ: {generated_features.shape[1]} vs {real_features.shape[1]}")
    if points < 2:
        raise ValueError(f"a line needs at least 2 points, got points={points}")
    if not 0.0 < min_fraction < 1.0:
        raise ValueError(f"min_fraction must lie strictly between 0 and 1, got {min_fraction}")
    count = len(generated_features)
    smallest = int(min_fraction * count)
    if smallest < 2:
        needed = math.ceil(2 / min_fraction)
        raise ValueError(
            f"FID∞ needs at least {needed} generated features (its smallest subset, {min_fraction:g} of them, needs "
            f"2 for a covariance), got {count}"
        )
    target = resolve_device(device)
    generated = torch.from_numpy(generated_features).to(target, torch.float64)
    real = torch.from_numpy(real_features).to(target, torch.float64)
    real_mean = real.mean(0)
    real_centred = real - real_mean
    real_trace = float((real_centred**2).sum()) / (len(real) - 1)
    projected = generated @ _covariance_factor(real_centred)

    sizes = np.linspace(smallest, count, points).astype(int)
    rng = np.random.default_rng(seed)
    fids = []
    for size in sizes:
        rows = torch.from_numpy(rng.permutation(count)[:size]).to(target)
        subset, subset_projected = generated[rows], projected[rows]
        mean = subset.mean(0)
        centred, z = subset - mean, subset_projected - subset_projected.mean(0)
        gram = z @ z.T if size <= z.shape[1] else z.T @ z
        trace_sqrt = float(torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().sum()) / math.sqrt(size - 1)
        trace = float((centred**2).sum()) / (size - 1)
        fids.append(float(((mean - real_mean) ** 2).sum()) + trace + real_trace - 2.0 * trace_sqrt)
    fids_array = np.asarray(fids)
    if not np.isfinite(fids_array).all():
        raise RuntimeError(f"non-finite FID for subsets of {count} generated vs {len(real)} real samples")
    slope, intercept = np.polyfit(1.0 / sizes, fids_array, 1)
    return FIDInfinity(float(intercept), float(slope), sizes, fids_array)


def fidelity_from_features(
    generated_features: np.ndarray,
    real_features: np.ndarray,
    *,
    kid_subset_size: int | None = None,
    kid_subsets: int = 100,
    prc_neighborhood: int = _DEFAULT_PRC_NEIGHBORHOOD,
    seed: int = DEFAULT_SEED,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """FID, KID (mean, std over ``kid_subsets`` draws) and precision/recall/F-score from N×D feature arrays.

    ``kid_subset_size`` defaults to 1000 and is capped by the smaller set; the k-NN radii of precision/recall use
    ``prc_neighborhood`` neighbours, with distances computed on ``device``. A non-finite result raises RuntimeError.
    """
    if prc_neighborhood < 1:
        raise ValueError(f"prc_neighborhood must be positive, got {prc_neighborhood}")
    min_count = _min_samples(prc_neighborhood)
    _check_features(generated_features, "generated_features", min_count)
    _check_features(real_features, "real_features", min_count)
    if generated_features.shape[1] != real_features.shape[1]:
        raise ValueError(f"feature widths differ: {generated_features.shape[1]} vs {real_features.shape[1]}")
    if generated_features.dtype != real_features.dtype:
        raise ValueError(f"feature dtypes differ: {generated_features.dtype} vs {real_features.dtype}")
    if kid_subsets < 1:
        raise ValueError(f"kid_subsets must be positive, got {kid_subsets}")
    generated, real = torch.from_numpy(generated_features), torch.from_numpy(real_features)
    subset = min(kid_subset_size or _DEFAULT_KID_SUBSET_SIZE, len(generated), len(real))

    fid = _fid(generated, real)
    kid = kid_features_to_metric(
        generated, real, kid_subsets=kid_subsets, kid_subset_size=subset, rng_seed=seed, verbose=False
    )
    target = resolve_device(device)
    prc = prc_features_to_metric(
        generated.to(target), real.to(target), prc_neighborhood=prc_neighborhood, save_cpu_ram=True, verbose=False
    )
    metrics = {
        "fid": fid,
        "kid_mean": float(kid[KEY_METRIC_KID_MEAN]),
        "kid_std": float(kid[KEY_METRIC_KID_STD]),
        "precision": float(prc[KEY_METRIC_PRECISION]),
        "recall": float(prc[KEY_METRIC_RECALL]),
        "f_score": float(prc[KEY_METRIC_F_SCORE]),
    }
    bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
    if bad:
        raise RuntimeError(f"non-finite metrics {bad} for {len(generated)} generated vs {len(real)} real samples")
    return metrics


def compute_fidelity(
    generated: np.ndarray,
    real: np.ndarray,
    *,
    weights_path: Path,
    kid_subset_size: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """FID, KID and precision/recall between two uint8 N×3×H×W image sets (both sides extracted here)."""
    min_count = _min_samples(_DEFAULT_PRC_NEIGHBORHOOD)
    check_images(generated, "generated", min_count=min_count)
    check_images(real, "real", min_count=min_count)
    extract = dict(weights_path=weights_path, batch_size=batch_size, device=device, progress=verbose)
    return fidelity_from_features(
        inception_features(generated, **extract),
        inception_features(real, **extract),
        kid_subset_size=kid_subset_size,
        device=device,
    )
