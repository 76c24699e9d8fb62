"""Memorisation: how close generated faces come to training faces, in Inception feature space.

Each generated sample's nearest training face (Euclidean distance between pool3 features) is compared with a
threshold taken from the training set itself: the ``quantile`` (default 1 %) of the leave-one-out nearest-neighbour
distances among training faces. A sample under it is a *near copy*: closer to a training face than 99 % of
training faces are to each other. The real set must hold each face once (see
:func:`facegen.metrics.features.unique_images`): repeats would put the threshold at zero.
"""

from __future__ import annotations

import numpy as np
import torch

from facegen.devices import resolve_device
from facegen.metrics.features import check_images

DEFAULT_QUANTILE = 0.01
#: Queries per ``torch.cdist`` call: 1024 × 20k reference rows is an 80 MB float32 block.
DEFAULT_CHUNK = 1024
_REPORTED_QUANTILES = {"p01": 0.01, "p05": 0.05, "p50": 0.5, "p95": 0.95}
#: A threshold below this share of the real features' spread (median distance to their mean) means repeats: true
#: nearest-neighbour distances between faces are a sizeable fraction of the spread, float32 ``cdist`` noise on an
#: exact repeat is ~1e-3 of it.
_COLLAPSED_THRESHOLD = 1e-2


def nearest_neighbours(
    queries: torch.Tensor, reference: torch.Tensor, *, exclude_self: bool = False, chunk: int = DEFAULT_CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to and index of each query's nearest reference row, in chunks of ``chunk`` queries.

    ``exclude_self`` (queries *are* the reference) skips each row's own entry: the leave-one-out distance.
    """
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        block = torch.cdist(queries[start : start + chunk], reference)
        if exclude_self:
            rows = torch.arange(len(block), device=block.device)
            block[rows, rows + start] = float("inf")
        best = block.min(dim=1)
        distances.append(best.values.cpu())
        indices.append(best.indices.cpu())
    return torch.cat(distances), torch.cat(indices)


def memorisation_report(
    generated_features: np.ndarray,
    train_features: np.ndarray,
    *,
    quantile: float = DEFAULT_QUANTILE,
    device: str | torch.device | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> dict[str, float | np.ndarray]:
    """Nearest training face of every generated sample and the share that are near copies.

    Returns scalars ``threshold``, ``quantile``, ``near_copy_share``, ``nn_distance_{min,p01,p05,p50,p95}``,
    ``real_nn_distance_p50`` (the training set's own median leave-one-out distance, for scale) and per-sample
    arrays ``nn_index`` (row of ``train_features``) and ``nn_distance``.
    """
    for name, features in (("generated_features", generated_features), ("train_features", train_features)):
        if not isinstance(features, np.ndarray) or features.ndim != 2 or len(features) < 1:
            raise ValueError(f"{name} must be a non-empty N×D numpy array, got {getattr(features, 'shape', features)}")
        if not np.isfinite(features).all():
            raise ValueError(f"{name} contains non-finite values")
    if len(train_features) < 2:
        raise ValueError("train_features needs at least 2 rows for a leave-one-out distance")
    if generated_features.shape[1] != train_features.shape[1]:
        raise ValueError(f"feature widths differ: {generated_features.shape[1]} vs {train_features.shape[1]}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    target = resolve_device(device)
    train = torch.from_numpy(train_features).float().to(target)
    # Distances are translation invariant; centring shrinks the norms that float32 cdist (|x|²+|y|²-2xy) loses.
    center = train.mean(dim=0)
    train = train - center
    generated = torch.from_numpy(generated_features).float().to(target) - center

    real_nn, _ = nearest_neighbours(train, train, exclude_self=True, chunk=chunk)
    threshold = float(torch.quantile(real_nn.double(), quantile))
    spread = float(train.norm(dim=1).median())
    if threshold <= _COLLAPSED_THRESHOLD * spread:
        raise ValueError(
            f"near-copy threshold {threshold:.3g} collapsed (feature spread {spread:.3g}): over {quantile:.0%} of "
            f"the training features have an exact repeat; pass features of unique images (unique_images)"
        )
    distance, index = nearest_neighbours(generated, train, chunk=chunk)
    quantiles = torch.quantile(distance.double(), torch.tensor(list(_REPORTED_QUANTILES.values()), dtype=torch.double))
    return {
        "threshold": threshold,
        "quantile": quantile,
        "near_copy_share": float((distance <= threshold).double().mean()),
        "nn_distance_min": float(distance.min()),
        **{f"nn_distance_{key}": float(value) for key, value in zip(_REPORTED_QUANTILES, quantiles)},
        "real_nn_distance_p50": float(real_nn.median()),
        "nn_index": index.numpy(),
        "nn_distance": distance.numpy(),
    }


def closest_samples(report: dict, k: int) -> np.ndarray:
    """Indices of the ``k`` generated samples closest to a training face, closest first (the closest pairs' order)."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    return np.argsort(np.asarray(report["nn_distance"]), kind="stable")[:k]


def closest_pairs_grid(
    generated_images: np.ndarray, real_images: np.ndarray, report: dict, k: int = 16, gap: int = 2
) -> np.ndarray:
    """uint8 H×W×3 strip of the ``k`` generated samples closest to a training face, each above that face.

    ``real_images`` are the images behind the report's ``train_features`` (same order). The generated samples shown
    are :func:`closest_samples` (their seeds go into the grid's manifest, which says real photos are in it).
    """
    check_images(generated_images, "generated_images")
    check_images(real_images, "real_images")
    index = np.asarray(report["nn_index"])
    if len(generated_images) != len(index):
        raise ValueError(f"{len(generated_images)} generated images but the report covers {len(index)}")
    if index.max() >= len(real_images):
        raise ValueError(f"the report indexes real image {index.max()} of only {len(real_images)}")
    if generated_images.shape[2:] != real_images.shape[2:]:
        raise ValueError(f"resolutions differ: {generated_images.shape[2:]} vs {real_images.shape[2:]}")
    closest = closest_samples(report, k)
    _, _, height, width = generated_images.shape
    grid = np.full((2 * height + gap, len(closest) * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for column, sample in enumerate(closest):
        left = column * (width + gap)
        grid[:height, left : left + width] = generated_images[sample].transpose(1, 2, 0)
        grid[height + gap :, left : left + width] = real_images[index[sample]].transpose(1, 2, 0)
    return grid
