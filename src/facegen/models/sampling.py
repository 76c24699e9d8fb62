"""Sampling a generator: seeded latents in, uint8 images out (what metrics, exports and the service consume)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def seeded_latents(n: int, latent_dim: int, seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` standard-normal latents from a private generator: the same seed gives the same faces anywhere."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=generator).to(device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Map generator output in [-1, 1] (B×3×H×W) to uint8 [0, 255] on the CPU."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def generate_images(
    generator: nn.Module,
    n: int,
    *,
    seed: int,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """``n`` faces as a uint8 array N×3×H×W, generated in eval mode from seeded latents."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    was_training = generator.training
    generator.eval()
    latents = seeded_latents(n, generator.latent_dim, seed, device)
    chunks = [to_uint8(generator(latents[start : start + batch_size])) for start in range(0, n, batch_size)]
    generator.train(was_training)
    return np.concatenate(chunks)
