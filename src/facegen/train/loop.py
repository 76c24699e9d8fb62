"""The adversarial training loop: k discriminator steps, then one generator step, on GPU-resident uint8 data."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from facegen.data.augment import augment_batch, to_unit_range
from facegen.models.bundle import atomic_torch_save
from facegen.models.losses import discriminator_loss, generator_loss
from facegen.models.registry import build_discriminator, build_generator
from facegen.models.sampling import seeded_latents, to_uint8
from facegen.train.config import TrainingConfig
from facegen.train.ema import GeneratorEMA


class TrainingMonitor(Protocol):
    """Where the loop reports: MLflow in the pipeline, a list in tests."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, epoch: int, step: int, grid: np.ndarray) -> None: ...


@dataclass
class TrainingResult:
    generator: nn.Module  # the EMA generator, eval mode, on the CPU
    discriminator: nn.Module
    model_config: dict[str, Any]  # kwargs that rebuild the generator (resolution included)
    history: list[dict[str, float]] = field(default_factory=list)
    images_seen: int = 0
    generator_steps: int = 0
    seconds: float = 0.0


def sample_grid(generator: nn.Module, latents: torch.Tensor) -> np.ndarray:
    """A H×W×3 uint8 grid of the generator's faces for fixed latents."""
    with torch.no_grad():
        images = torch.from_numpy(to_uint8(generator(latents)))
    nrow = max(1, int(math.sqrt(len(images))))
    return make_grid(images, nrow=nrow, padding=1).permute(1, 2, 0).numpy()


def _check_finite(step: int, **losses: torch.Tensor) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value):
            raise FloatingPointError(f"{name} became {value.item()} at generator step {step}; training stopped")


def train_gan(
    images: np.ndarray,
    config: TrainingConfig,
    *,
    monitor: TrainingMonitor | None = None,
    checkpoint_path: Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train a GAN on uint8 images (N×3×R×R) and return the EMA generator with the loss history."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected uint8 N×3×R×R images, got {images.dtype} {images.shape}")
    if len(images) < 2:
        raise ValueError(f"need at least 2 training images, got {len(images)}")
    device = config.resolve_device()
    torch.manual_seed(config.seed)
    rng = torch.Generator(device=device).manual_seed(config.seed)
    model_config = {**config.model, "resolution": int(images.shape[-1])}
    generator = build_generator(config.architecture, model_config).to(device)
    discriminator = build_discriminator(config.architecture, model_config).to(device)
    ema = GeneratorEMA(generator, config.ema_decay)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas)

    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # moved once, uint8
    batch_size = min(config.batch_size, len(data))
    steps_per_epoch = max(1, len(data) // (batch_size * config.d_steps_per_g_step))
    grid_latents = seeded_latents(config.grid_size, generator.latent_dim, config.seed + 1, device)
    augment = config.augment.__dict__

    result = TrainingResult(ema.shadow, discriminator, model_config)
    started = time.perf_counter()
    bar = tqdm(total=config.epochs * steps_per_epoch, desc="train_gan", unit="step", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(data), generator=rng, device=device)
        cursor = 0
        for _ in range(steps_per_epoch):
            for _ in range(config.d_steps_per_g_step):
                index = order[cursor : cursor + batch_size]
                cursor += batch_size
                real = augment_batch(to_unit_range(data[index]), generator=rng, **augment)
                with torch.no_grad():
                    fake = generator(torch.randn(len(real), generator.latent_dim, device=device, generator=rng))
                real_logits, fake_logits = discriminator(real), discriminator(fake)
                loss_d = discriminator_loss(real_logits, fake_logits)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()

            fake_logits = discriminator(generator(torch.randn(batch_size, generator.latent_dim, device=device, generator=rng)))
            loss_g = generator_loss(fake_logits)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema.update(generator)

            result.generator_steps += 1
            result.images_seen += batch_size * config.d_steps_per_g_step
            _check_finite(result.generator_steps, loss_d=loss_d, loss_g=loss_g)
            if result.generator_steps % config.log_every_steps == 0 or result.generator_steps == 1:
                metrics = {
                    "loss_d": loss_d.item(),
                    "loss_g": loss_g.item(),
                    "d_real_prob": torch.sigmoid(real_logits).mean().item(),
                    "d_fake_prob": torch.sigmoid(fake_logits).mean().item(),
                    "epoch": float(epoch),
                    "images_seen": float(result.images_seen),
                }
                result.history.append({"step": float(result.generator_steps), **metrics})
                if monitor:
                    monitor.on_step(result.generator_steps, metrics)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")

        if monitor:
            monitor.on_epoch_end(epoch, result.generator_steps, sample_grid(ema.shadow, grid_latents))
        if checkpoint_path is not None:
            atomic_torch_save(
                {
                    "epoch": epoch,
                    "generator_steps": result.generator_steps,
                    "images_seen": result.images_seen,
                    "config": config.to_dict(),
                    "model_config": model_config,
                    "generator": generator.state_dict(),
                    "generator_ema": ema.shadow.state_dict(),
                    "discriminator": discriminator.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "rng": rng.get_state(),
                },
                checkpoint_path,
            )
    bar.close()
    result.seconds = time.perf_counter() - started
    result.generator = ema.shadow.cpu().eval()
    result.discriminator = discriminator.cpu()
    return result
