"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) applied to real AND generated images before D.

Small data sets let D memorise the real images; augmenting both sides with the same differentiable transforms keeps
D honest without leaking augmentations into G's outputs (gradients flow through the transforms to G). Everything
is batched tensor arithmetic on the training device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _colour(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, generator=rng, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, generator=rng, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, generator=rng, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, zero-filled (a padded gather keeps it differentiable)."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device, generator=rng)
    tx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device, generator=rng)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy[None] + ty + 1).clamp(0, h + 1)
    gx = (gx[None] + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, gy, gx].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of ``ratio`` × size per image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1, (b, 1, 1), device=x.device, generator=rng) - ch // 2
    left = torch.randint(0, w + 1, (b, 1, 1), device=x.device, generator=rng) - cw // 2
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = (gy[None] >= top) & (gy[None] < top + ch) & (gx[None] >= left) & (gx[None] < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_POLICIES = {"color": _colour, "translation": _translation, "cutout": _cutout}


def parse_policy(policy: str) -> list[str]:
    """``"color,translation,cutout"`` → the transform names, validated; ``""`` → none."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = sorted(set(names) - set(_POLICIES))
    if unknown:
        raise ValueError(f"unknown DiffAugment transforms {unknown}; choose from {sorted(_POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: list[str], rng: torch.Generator) -> torch.Tensor:
    """Apply the policy's transforms in order; differentiable with respect to ``x``."""
    for name in policy:
        x = _POLICIES[name](x, rng)
    return x
