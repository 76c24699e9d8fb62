"""Light, label-preserving augmentation of training batches on whatever device the batch lives on.

Kept mild on purpose (small rotations, gentle colour jitter): a GAN reproduces its training distribution, so
strong augmentation would leak into generated faces. Everything is vectorised over the batch and
differentiable, and all randomness comes from one optional ``torch.Generator`` so runs are reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, the same as PIL's convert("L") and torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def to_unit_range(batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) to float32 in [-1, 1], the generator's output range."""
    tensor = torch.from_numpy(np.asarray(batch)) if not isinstance(batch, torch.Tensor) else batch
    if tensor.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {tensor.dtype}")
    return tensor.to(torch.float32) / 127.5 - 1.0


def _grayscale(images01: torch.Tensor) -> torch.Tensor:
    weights = images01.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images01 * weights).sum(dim=1, keepdim=True)


def _rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image by its own angle about its centre, reflecting at the borders."""
    height, width = images.shape[-2:]
    radians = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # affine_grid works in [-1, 1] coordinates per axis; the aspect factors keep the rotation rigid in pixels.
    theta = torch.stack(
        [torch.stack([cos, -sin * height / width, zero], dim=1), torch.stack([sin * width / height, cos, zero], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment_batch(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None,
    flip_p: float = 0.5,
    max_rotation_deg: float = 5.0,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
) -> torch.Tensor:
    """Randomly flip, rotate and colour-jitter a B×3×H×W batch in [-1, 1]; same shape, dtype and device out.

    Per sample: horizontal flip with probability ``flip_p``; rotation uniform in ±``max_rotation_deg``; brightness,
    contrast and saturation factors uniform in ``[max(0, 1 - s), 1 + s]`` (torchvision's ColorJitter semantics,
    fixed order). An operation whose strength is 0 is skipped, so it leaves pixels bit-identical.
    """
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"expected a float B×3×H×W batch, got {tuple(images.shape)} {images.dtype}")
    batch = images.shape[0]
    # Draw on the generator's device (a CPU generator can drive a CUDA batch), then move the few numbers over.
    draw_device = generator.device if generator is not None else images.device
    uniform = torch.rand(batch, 5, generator=generator, device=draw_device).to(images.device, images.dtype)
    signed = uniform * 2.0 - 1.0  # uniform in [-1, 1]

    out = images
    if flip_p > 0:
        flip = (uniform[:, 0] < flip_p).view(batch, 1, 1, 1)
        out = torch.where(flip, out.flip(-1), out)
    if max_rotation_deg > 0:
        out = _rotate(out, signed[:, 1] * max_rotation_deg)
    if brightness > 0 or contrast > 0 or saturation > 0:
        out = (out + 1.0) * 0.5
        if brightness > 0:
            out = (out * (1.0 + signed[:, 2] * brightness).clamp_min(0.0).view(batch, 1, 1, 1)).clamp(0.0, 1.0)
        if contrast > 0:
            mean = _grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
            factor = (1.0 + signed[:, 3] * contrast).clamp_min(0.0).view(batch, 1, 1, 1)
            out = (mean + (out - mean) * factor).clamp(0.0, 1.0)
        if saturation > 0:
            gray = _grayscale(out)
            factor = (1.0 + signed[:, 4] * saturation).clamp_min(0.0).view(batch, 1, 1, 1)
            out = (gray + (out - gray) * factor).clamp(0.0, 1.0)
        out = out * 2.0 - 1.0
    return out.clamp(-1.0, 1.0)
