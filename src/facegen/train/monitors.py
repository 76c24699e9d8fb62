"""Training health signals: discriminator accuracy (and its class heads'), gradient norms and a mode-collapse (diversity) signal."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[float, float]:
    """Share of real images D scores as real, and of generated images it scores as fake (logit sign)."""
    return (real_logits > 0).float().mean().item(), (fake_logits < 0).float().mean().item()


def class_accuracy(class_logits: Mapping[str, torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """Per attribute, the share of images with a known label (≥ 0) whose class head picks it (0 when none is)."""
    return {
        name: (((logits.argmax(1) == column) & (column >= 0)).sum() / (column >= 0).sum().clamp(min=1)).item()
        for (name, logits), column in zip(class_logits.items(), labels.unbind(1))
    }


def gradient_norm(module: nn.Module) -> float:
    """L2 norm of all parameter gradients (exploding or vanishing updates show here first)."""
    norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(norms).norm().item() if norms else 0.0


def mean_pairwise_distance(images: torch.Tensor, size: int = 16) -> float:
    """Mean L2 distance between all pairs of (downscaled, flattened) images in [-1, 1].

    Mode collapse shows as this falling toward 0 for generated batches while the same number on real images stays
    put; the trainer logs the ratio generated / real (``diversity_ratio``).
    """
    assert images.ndim == 4 and images.shape[0] >= 2, f"need a batch of at least 2 images, got {tuple(images.shape)}"
    small = F.interpolate(images.float(), size=(size, size), mode="area").flatten(1)
    distances = torch.cdist(small, small)
    n = small.shape[0]
    return (distances.sum() / (n * (n - 1))).item()
