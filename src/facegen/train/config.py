"""Training configuration: one dataclass, filled from the ``train_gan`` step's YAML parameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Per-batch augmentation applied to real images while training (the brief's flip, rotation, colour)."""

    flip_p: float = 0.5  # probability of a horizontal flip
    max_rotation_deg: float = 5.0  # rotation drawn uniformly in ±this
    brightness: float = 0.1  # colour jitter strengths
    contrast: float = 0.1
    saturation: float = 0.1


@dataclass(frozen=True)
class TrainingConfig:
    """Everything the trainer needs besides the data."""

    architecture: str = "dcgan"  # a name from facegen.models.registry
    model: dict[str, Any] = field(default_factory=dict)  # architecture kwargs: latent_dim, width, norm, …
    epochs: int = 5  # passes of the real images through D
    batch_size: int = 64
    d_steps_per_g_step: int = 1  # k discriminator steps before each generator step
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas, DCGAN's
    ema_decay: float = 0.999  # EMA of G used for evaluation and serving
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    grid_size: int = 64  # faces in the per-epoch sample grid (fixed latents)
    log_every_steps: int = 10  # loss logging interval, in generator steps
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "d_steps_per_g_step", "grid_size", "log_every_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingConfig":
        """Build from plain YAML values (nested ``augment`` dict, ``betas`` list)."""
        values = dict(values)
        if "augment" in values:
            values["augment"] = AugmentConfig(**values["augment"])
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)
