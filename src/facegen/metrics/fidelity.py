"""FID and KID of generated vs real faces, offline, through torch-fidelity's TF-compatible InceptionV3.

Weights come from ``facegen.metrics.inception_weights`` (converted once at set-up). Inception Score is
deliberately absent: the offline network has no classifier, so IS would be meaningless.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from torch.utils.data import Dataset

_KEYS = {
    "fid": "frechet_inception_distance",
    "kid_mean": "kernel_inception_distance_mean",
    "kid_std": "kernel_inception_distance_std",
}
_DEFAULT_KID_SUBSET_SIZE = 1000


class _UInt8Images(Dataset):
    """Serves an N×3×H×W uint8 array as torch-fidelity expects: one uint8 3×H×W tensor per item (it resizes)."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self._images[index]))


def _validate_images(images: np.ndarray, name: str) -> None:
    """Reject what torch-fidelity would misread silently (floats in [0, 1], HWC layout) or cannot score."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        found = getattr(images, "dtype", type(images))
        raise ValueError(f"{name} must be a uint8 numpy array in [0, 255], got {found}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape N×3×H×W, got {images.shape}")
    if images.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images for a covariance, got {images.shape[0]}")


def _use_cuda(device: str | None) -> tuple[bool, contextlib.AbstractContextManager]:
    """torch-fidelity takes only a cuda flag; a device index is honoured by making it current."""
    if device is None:
        return torch.cuda.is_available(), contextlib.nullcontext()
    parsed = torch.device(device)
    if parsed.type == "cpu":
        return False, contextlib.nullcontext()
    if parsed.type == "cuda":
        return True, torch.cuda.device(parsed) if parsed.index is not None else contextlib.nullcontext()
    raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")


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
    """FID and KID (mean, std) between two uint8 N×3×H×W image sets; raises rather than report a non-finite value."""
    _validate_images(generated, "generated")
    _validate_images(real, "real")
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"Inception weights not found at {weights_path}; create them with "
            f"`python -m facegen.metrics.inception_weights [DEST]`"
        )
    subset = min(kid_subset_size or _DEFAULT_KID_SUBSET_SIZE, len(generated), len(real))
    cuda, device_scope = _use_cuda(device)
    with device_scope:
        raw = torch_fidelity.calculate_metrics(
            input1=_UInt8Images(generated),
            input2=_UInt8Images(real),
            fid=True,
            kid=True,
            isc=False,
            feature_extractor="inception-v3-compat",
            feature_extractor_weights_path=str(weights_path),
            cuda=cuda,
            kid_subset_size=subset,
            batch_size=batch_size,
            verbose=verbose,
            save_cpu_ram=True,
            cache=False,
        )
    metrics = {name: float(raw[key]) for name, key in _KEYS.items()}
    bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
    if bad:
        raise RuntimeError(f"non-finite metrics {bad} for {len(generated)} generated vs {len(real)} real images")
    return metrics
