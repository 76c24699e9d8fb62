"""R3GAN's training schedules: knobs that move with the number of images seen (Huang et al. 2024, training details).

The paper decays the learning rate, the R1/R2 weight γ and Adam's 1 − β2, and raises the augmentation probability,
along a half cosine over the first ``schedule_images`` images seen (20M for FFHQ-64), then holds the final values.
Each value is a pure function of images seen, which the checkpoint holds, so a resumed run continues the schedule
exactly and DDP ranks agree without talking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facegen.train.config import TrainingConfig


def cosine_ramp(start: float, final: float, images_seen: int, total_images: int) -> float:
    """``start`` → ``final`` along a half cosine over ``total_images`` images, ``final`` after; ``start`` if 0."""
    if total_images <= 0:
        return start
    progress = min(1.0, images_seen / total_images)
    return start + (final - start) * 0.5 * (1 - math.cos(math.pi * progress))


@dataclass(frozen=True)
class Knobs:
    """The scheduled values in force for one training step."""

    lr_g: float
    lr_d: float
    beta2: float
    r1_gamma: float
    r2_gamma: float
    diffaugment_p: float


def knobs_at(config: TrainingConfig, images_seen: int) -> Knobs:
    """The learning rates, β2, γs and augmentation probability after ``images_seen`` images."""

    def ramp(start: float, final: float) -> float:
        return cosine_ramp(start, final, images_seen, config.schedule_images)

    lr_scale = ramp(1.0, config.lr_final_ratio)
    gamma_scale = ramp(1.0, config.gamma_final_ratio)
    beta2 = config.betas[1]
    p = config.diffaugment_p
    return Knobs(
        lr_g=config.lr_g * lr_scale,
        lr_d=config.lr_d * lr_scale,
        beta2=beta2 if config.beta2_final is None else ramp(beta2, config.beta2_final),
        r1_gamma=config.r1_gamma * gamma_scale,
        r2_gamma=config.r2_gamma * gamma_scale,
        diffaugment_p=p if config.diffaugment_p_final is None else ramp(p, config.diffaugment_p_final),
    )
