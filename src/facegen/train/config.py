"""Training configuration: one dataclass, filled from the ``train_gan`` step's YAML parameters (and ddp_main's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from facegen.config_keys import dataclass_from_dict, reject_unknown
from facegen.devices import resolve_device
from facegen.models.registry import check_resolution, class_head_architectures

PRECISIONS = ("fp32", "bf16", "fp16")
#: Where training images live (facegen.train.data_feed): auto picks by free memory; stream reads shards as it goes.
DATA_POLICIES = ("auto", "always", "never", "stream")


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
    model: dict[str, Any] = field(default_factory=dict)  # architecture kwargs: latent_dim, width, norm, conditioning…
    epochs: int = 5  # passes of the real images through D
    batch_size: int = 64  # global batch (split across DDP ranks)
    d_steps_per_g_step: int = 1  # k discriminator steps before each generator step
    loss: str = "non_saturating"  # minimax | non_saturating | hinge | wgan_gp (facegen.models.losses)
    gp_weight: float = 10.0  # WGAN-GP penalty weight
    r1_gamma: float = 0.0  # R1 penalty weight on real images (0 = off)
    r1_every: int = 16  # lazy regularisation: R1 (and R2) every this many D steps, scaled up accordingly
    r2_gamma: float = 0.0  # zero-centred R2 penalty weight on generated images (0 = off; R3GAN: = r1_gamma)
    lr_g: float = 2e-4  # separate learning rates for G and D (TTUR)
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas, DCGAN's
    ema_decay: float = 0.999  # EMA of G used for evaluation and serving
    label_dropout: float = 0.1  # conditional models: share of labels shown as −1 ("unspecified") so G learns "any"
    # AC-GAN (Odena, Olah & Shlens 2017, Eq. 2–3): D grows one class head per conditioned attribute and both D and G
    # add this × the heads' cross-entropy (facegen.train.loop); 0 = off, the projection discriminator alone.
    aux_classifier_weight: float = 0.0
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs, annealed linearly to 0
    diffaugment: str = ""  # DiffAugment policy for D's inputs, e.g. "color,translation,cutout"
    diffaugment_p: float = 1.0  # probability that an image D sees is DiffAugmented (at the start of the schedule)
    # R3GAN's cosine schedules (facegen.train.schedule): over the first schedule_images images seen, learning rates,
    # R1/R2 γ, Adam β2 and diffaugment_p move from the values above to these final ones, then stay there.
    schedule_images: int = 0  # schedule length in images seen (0 = no schedule: the values above throughout)
    lr_final_ratio: float = 1.0  # lr_g and lr_d at the end ÷ at the start (R3GAN: 5e-5 / 2e-4 = 0.25)
    gamma_final_ratio: float = 1.0  # r1_gamma and r2_gamma at the end ÷ at the start (R3GAN: 0.1)
    beta2_final: float | None = None  # Adam β2 at the end (R3GAN: 0.9 → 0.99); None = betas[1] throughout
    diffaugment_p_final: float | None = None  # diffaugment_p at the end (R3GAN: 0 → 0.3); None = unchanged
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a gradient scaler)
    channels_last: bool = False  # NHWC memory format for convolutions on GPU
    compile: bool = False  # torch.compile G and D
    data_on_device: str = "auto"  # auto | always | never | stream (facegen.train.data_feed)
    grid_size: int = 64  # faces in the per-epoch sample grid (fixed latents)
    log_every_steps: int = 10  # loss logging interval, in generator steps
    monitor_every_steps: int = 50  # gradient norms, diversity (mode-collapse signal)
    fid_every_steps: int = 0  # FID at intervals through a caller-supplied function (0 = off)
    fid_num_samples: int = 2000  # generated faces per FID during training (the train_gan step's tracker)
    checkpoint_every_steps: int = 0  # also checkpoint every N generator steps (0 = end of each epoch only)
    max_nan_rollbacks: int = 3  # non-finite losses: roll back to the last checkpoint this often, then fail
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "batch_size",
            "d_steps_per_g_step",
            "grid_size",
            "log_every_steps",
            "r1_every",
            "monitor_every_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fid_every_steps < 0 or self.fid_every_steps % self.log_every_steps:
            raise ValueError(
                f"fid_every_steps must be 0 or a multiple of log_every_steps ({self.log_every_steps}), "
                f"got {self.fid_every_steps}"
            )
        if self.schedule_images < 0 or self.lr_final_ratio <= 0 or self.gamma_final_ratio < 0:
            raise ValueError("schedule_images and gamma_final_ratio must be >= 0 and lr_final_ratio > 0")
        if self.r1_gamma < 0 or self.r2_gamma < 0:
            raise ValueError(f"r1_gamma and r2_gamma must be >= 0, got {self.r1_gamma} and {self.r2_gamma}")
        for name in ("diffaugment_p", "diffaugment_p_final"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.aux_classifier_weight < 0:
            raise ValueError(f"aux_classifier_weight must be >= 0, got {self.aux_classifier_weight}")
        if self.aux_classifier_weight > 0 and not self.model.get("conditioning"):
            raise ValueError("aux_classifier_weight > 0 needs a conditional model: set model.conditioning")
        if self.aux_classifier_weight > 0 and self.architecture not in class_head_architectures():
            raise ValueError(
                "aux_classifier_weight needs an architecture whose discriminator has class heads: "
                f"{', '.join(class_head_architectures())}; got {self.architecture!r}"
            )
        if self.beta2_final is not None and not 0 <= self.beta2_final < 1:
            raise ValueError(f"beta2_final must lie in [0, 1), got {self.beta2_final}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.data_on_device not in DATA_POLICIES:
            raise ValueError(f"data_on_device must be one of {DATA_POLICIES}, got {self.data_on_device!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingConfig":
        """Build from plain YAML values (nested ``augment`` dict, ``betas`` list); an unknown key is a ValueError."""
        values = dict(values)
        reject_unknown(values, (f.name for f in fields(cls)), "training")
        if isinstance(values.get("augment"), dict):
            values["augment"] = dataclass_from_dict(AugmentConfig, values["augment"], "training.augment")
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve_device(self) -> torch.device:
        return resolve_device(self.device)


def check_run_config(run: Mapping[str, Any]) -> TrainingConfig:
    """The training block of a ``training`` pipeline config (``zenml … -c`` file), checked as far as it can be
    without data: known knobs, and ``parameters.resolution`` (when set) one its architecture is built at. The side is
    first used by build_dataset, long before train_gan builds the models, so this is where a wrong one must fail."""
    step = (run.get("steps") or {}).get("train_gan") or {}
    config = TrainingConfig.from_dict((step.get("parameters") or {}).get("training") or {})
    resolution = (run.get("parameters") or {}).get("resolution")
    if resolution is not None:
        try:
            check_resolution(config.architecture, resolution)
        except ValueError as error:
            raise ValueError(f"parameters.resolution: {error}") from None
    return config
