"""GAN objectives on discriminator logits, chosen by name, plus the gradient penalties that stabilise them.

- ``minimax``: the original game; G minimises log(1 − D(G(z))) and its gradients vanish when D wins early.
- ``non_saturating``: the brief's "modified" loss; G maximises log D(G(z)) instead.
- ``hinge``: D's margin loss max(0, 1 ∓ D(x)); G maximises D(G(z)) (SAGAN, BigGAN).
- ``wgan_gp``: Wasserstein critic with a gradient penalty on interpolates (Gulrajani et al. 2017).
``softplus`` is the numerically stable form of the BCE terms on logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class GanLoss:
    """One objective: D's loss on (real, fake) logits and G's loss on fake logits."""

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]
    needs_gradient_penalty: bool = False  # WGAN-GP's penalty on real/fake interpolates


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−log D(x) − log(1 − D(G(z))), averaged over the batch (minimax and non-saturating share it)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: −log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def _minimax_generator(fake_logits: torch.Tensor) -> torch.Tensor:
    return -F.softplus(fake_logits).mean()  # log(1 − D(G(z))) = −softplus(logit)


_LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss(discriminator_loss, _minimax_generator),
    "non_saturating": GanLoss(discriminator_loss, generator_loss),
    "hinge": GanLoss(
        lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
        lambda fake: -fake.mean(),
    ),
    "wgan_gp": GanLoss(lambda real, fake: fake.mean() - real.mean(), lambda fake: -fake.mean(), True),
}


def register_loss(name: str, loss: GanLoss) -> None:
    """Make a new objective available to configs under ``name``."""
    if name in _LOSSES:
        raise ValueError(f"loss {name!r} is already registered")
    _LOSSES[name] = loss


def get_loss(name: str) -> GanLoss:
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; registered: {sorted(_LOSSES)}") from None


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of D at real images (Mescheder et al. 2018); ``real_images`` must require grad."""
    (gradients,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradients.square().sum(dim=[1, 2, 3]).mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP: (‖∇D(x̂)‖ − 1)² on random interpolates x̂ between real and fake images."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (gradients,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return (gradients.flatten(1).norm(dim=1) - 1).square().mean()
