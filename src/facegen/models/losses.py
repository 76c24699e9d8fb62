"""GAN objectives on discriminator logits.

Non-saturating (the brief's "modified" loss): D minimises BCE(real→1, fake→0); G maximises log D(G(z)) instead of
minimising log(1 − D(G(z))), which keeps G's gradients alive early in training. ``softplus`` is the numerically stable
form of those BCE terms on logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−log D(x) − log(1 − D(G(z))), averaged over the batch."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: −log D(G(z))."""
    return F.softplus(-fake_logits).mean()
