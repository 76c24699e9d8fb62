"""GAN objectives on discriminator logits, chosen by name, plus the gradient penalties that stabilise them.

- ``minimax``: the original game; G minimises log(1 − D(G(z))) and its gradients vanish when D wins early.
- ``non_saturating``: the brief's "modified" loss; G maximises log D(G(z)) instead.
- ``hinge``: D's margin loss max(0, 1 ∓ D(x)); G maximises D(G(z)) (SAGAN, BigGAN).
- ``wgan_gp``: Wasserstein critic with a gradient penalty on interpolates (Gulrajani et al. 2017).
- ``rpgan``: relativistic pairing (Huang et al. 2024, "The GAN is dead; long live the GAN!", Sec. 2, Eq. 2, after
  Jolicoeur-Martineau 2018): each real logit is compared with a fake one, D maximises D(x) − D(G(z)) and G the
  reverse, through the same softplus. Paired with zero-centred R1 (real) and R2 (fake) penalties (TrainingConfig
  ``r1_gamma``, ``r2_gamma``), the paper's Sec. 2 shows it locally convergent, where RpGAN + R1 alone diverges.
- :func:`auxiliary_classification_loss`: AC-GAN's class term (TrainingConfig ``aux_classifier_weight``), added to
  D's and G's objectives whichever of the above is chosen.
``softplus`` is the numerically stable form of the BCE terms on logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class GanLoss:
    """One objective: D's loss on (real, fake) logits and G's loss on fake logits (and real ones, when paired)."""

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: LossFn  # (fake_logits), or (fake_logits, real_logits) when ``paired``
    needs_gradient_penalty: bool = False  # WGAN-GP's penalty on real/fake interpolates
    paired: bool = False  # relativistic: G's loss compares each fake logit with a real one, so its step needs both


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−log D(x) − log(1 − D(G(z))), averaged over the batch (minimax and non-saturating share it)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: −log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def _minimax_generator(fake_logits: torch.Tensor) -> torch.Tensor:
    return -F.softplus(fake_logits).mean()  # log(1 − D(G(z))) = −softplus(logit)


def _relativistic(winner: torch.Tensor, loser: torch.Tensor) -> torch.Tensor:
    """softplus(−(winner − loser)) over pairs: −log σ of how far each winner's logit is above its paired loser's."""
    if winner.shape != loser.shape:
        raise ValueError(
            f"relativistic pairing needs as many real as fake logits, got {winner.shape} and {loser.shape}"
        )
    return F.softplus(loser - winner).mean()


def rpgan_discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """RpGAN, D's side (Eq. 2): E[softplus(D(G(z)) − D(x))] over paired real and fake images."""
    return _relativistic(real_logits, fake_logits)


def rpgan_generator(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """RpGAN, G's side (Eq. 2): E[softplus(D(x) − D(G(z)))]; the real logits are constants here."""
    return _relativistic(fake_logits, real_logits)


_LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss(discriminator_loss, _minimax_generator),
    "non_saturating": GanLoss(discriminator_loss, generator_loss),
    "hinge": GanLoss(
        lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
        lambda fake: -fake.mean(),
    ),
    "wgan_gp": GanLoss(lambda real, fake: fake.mean() - real.mean(), lambda fake: -fake.mean(), True),
    "rpgan": GanLoss(rpgan_discriminator, rpgan_generator, paired=True),
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


def zero_centred_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of D at ``images`` (which must require grad): R1 at real images (Mescheder et al.
    2018), R2 at generated ones (Huang et al. 2024, Sec. 2); the loop weights each by γ/2."""
    (gradients,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return gradients.square().sum(dim=[1, 2, 3]).mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP: (‖∇D(x̂)‖ − 1)² on random interpolates x̂ between real and fake images."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (gradients,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return (gradients.flatten(1).norm(dim=1) - 1).square().mean()


def auxiliary_classification_loss(class_logits: Mapping[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """AC-GAN's class term L_C (Odena, Olah & Shlens 2017, Eq. 3): per attribute the cross-entropy of D's class
    heads against the labels, over the rows whose label is known, summed over attributes.

    A −1 ("unknown") label contributes nothing, and an attribute with no known label in the batch gives 0, not NaN:
    the mean is taken over max(1, known rows).
    """
    assert labels.ndim == 2 and labels.shape[1] == len(class_logits), f"got labels {tuple(labels.shape)}"
    total = labels.new_zeros((), dtype=torch.float32)
    for column, logits in zip(labels.unbind(1), class_logits.values()):
        summed = F.cross_entropy(logits.float(), column, ignore_index=-1, reduction="sum")
        total = total + summed / (column >= 0).sum().clamp(min=1)
    return total
