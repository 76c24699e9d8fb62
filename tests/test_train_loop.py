"""The training loop on real faces: it learns, logs through its monitor, checkpoints atomically and is seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.sampling import generate_images
from facegen.train.config import TrainingConfig
from facegen.train.ema import GeneratorEMA
from facegen.train.loop import train_gan

TINY = {"model": {"latent_dim": 16, "width": 8}, "batch_size": 16, "grid_size": 4, "log_every_steps": 1}


class RecordingMonitor:
    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.grids: list[tuple[int, np.ndarray]] = []

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.steps.append((step, metrics))

    def on_epoch_end(self, epoch: int, step: int, grid: np.ndarray) -> None:
        self.grids.append((epoch, grid))


@pytest.fixture(scope="module")
def faces_16(real_faces_32: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(real_faces_32[:, :, ::2, ::2])


def test_training_reports_every_step_and_a_grid_per_epoch(faces_16: np.ndarray, tmp_path: Path):
    monitor = RecordingMonitor()
    config = TrainingConfig.from_dict({**TINY, "epochs": 2, "d_steps_per_g_step": 2})
    result = train_gan(faces_16, config, monitor=monitor, checkpoint_path=tmp_path / "last.pt", progress=False)

    steps_per_epoch = len(faces_16) // (16 * 2)
    assert result.generator_steps == 2 * steps_per_epoch
    assert result.images_seen == result.generator_steps * 16 * 2  # k=2 real batches per generator step
    assert [step for step, _ in monitor.steps] == list(range(1, result.generator_steps + 1))
    assert all(np.isfinite(list(metrics.values())).all() for _, metrics in monitor.steps)
    assert [epoch for epoch, _ in monitor.grids] == [1, 2]
    grid = monitor.grids[-1][1]
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3

    checkpoint = torch.load(tmp_path / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["generator_steps"] == result.generator_steps
    assert {"generator", "generator_ema", "discriminator", "opt_g", "opt_d"} <= checkpoint.keys()
    assert not list(tmp_path.glob(".last.pt.*"))  # no temp file left behind


def test_discriminator_learns_to_separate_real_from_generated(faces_16: np.ndarray):
    config = TrainingConfig.from_dict({**TINY, "epochs": 3, "lr_g": 1e-5, "lr_d": 1e-3})
    result = train_gan(faces_16, config, progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["loss_d"] < first["loss_d"]
    assert last["d_real_prob"] - last["d_fake_prob"] > first["d_real_prob"] - first["d_fake_prob"]


def test_same_seed_same_generator(faces_16: np.ndarray, tmp_path: Path):
    config = TrainingConfig.from_dict({**TINY, "epochs": 1})
    first = train_gan(faces_16, config, progress=False)
    second = train_gan(faces_16, config, progress=False)
    assert np.array_equal(generate_images(first.generator, 4, seed=3), generate_images(second.generator, 4, seed=3))

    bundle = save_generator_bundle(tmp_path / "bundle", "dcgan", first.model_config, first.generator)
    reloaded = load_generator_bundle(bundle)
    assert np.array_equal(generate_images(reloaded, 4, seed=3), generate_images(first.generator, 4, seed=3))


def test_ema_moves_toward_the_generator_and_ramps_up():
    online = torch.nn.Linear(2, 2)
    ema = GeneratorEMA(online, decay=0.999)
    with torch.no_grad():
        online.weight.add_(1.0)
    ema.update(online)
    # First update uses decay (1+1)/(10+1) ≈ 0.18, not 0.999: the EMA is not stuck at initialisation.
    moved = (ema.shadow.weight - (online.weight - 1.0)).mean().item()
    assert moved == pytest.approx(1 - 2 / 11, rel=1e-5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        train_gan(np.zeros((4, 3, 16, 16), np.float32), TrainingConfig(), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=0)
