"""The training loop on real faces: it learns, logs through its monitor, checkpoints atomically and is seeded."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.losses import GanLoss, discriminator_loss, generator_loss, register_loss
from facegen.models.registry import build_generator
from facegen.models.sampling import base_seeds, faces_from_seeds
from facegen.train.checkpoint import load_checkpoint
from facegen.train.config import TrainingConfig
from facegen.train.ema import GeneratorEMA
from facegen.train.loop import _sampling_weights, epoch_order, train_gan

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

    checkpoint = load_checkpoint(tmp_path / "last.pt", torch.device("cpu"))  # weights_only=True inside
    assert checkpoint["generator_steps"] == result.generator_steps
    assert checkpoint["images_seen"] == result.images_seen
    assert {"generator", "generator_ema", "discriminator", "opt_g", "opt_d", "scaler", "rng"} <= checkpoint.keys()
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
    seeds = base_seeds(3, 4)
    assert np.array_equal(faces_from_seeds(first.generator, seeds), faces_from_seeds(second.generator, seeds))

    bundle = save_generator_bundle(tmp_path / "bundle", "dcgan", first.model_config, first.generator)
    reloaded = load_generator_bundle(bundle)
    assert np.array_equal(faces_from_seeds(reloaded, seeds), faces_from_seeds(first.generator, seeds))


def test_ema_moves_toward_the_generator_and_ramps_up():
    online = torch.nn.Linear(2, 2)
    ema = GeneratorEMA(online, decay=0.999)
    with torch.no_grad():
        online.weight.add_(1.0)
    ema.update(online)
    # First update uses decay (1+1)/(10+1) ≈ 0.18, not 0.999: the EMA is not stuck at initialisation.
    moved = (ema.shadow.weight - (online.weight - 1.0)).mean().item()
    assert moved == pytest.approx(1 - 2 / 11, rel=1e-5)


def test_the_ema_generator_normalises_with_statistics_of_its_own_weights():
    """BatchNorm running statistics copied from the online generator belong to other weights (washed-out faces);
    the EMA generator's are estimated under its own, so eval mode agrees with batch statistics on a large batch."""
    online = build_generator("dcgan", {"resolution": 16, "latent_dim": 8, "width": 8, "conditioning": ["gender"]})
    ema = GeneratorEMA(online, decay=0.5)
    with torch.no_grad():
        for parameter in online.parameters():
            parameter.mul_(3.0).add_(0.2)  # far from the EMA's weights
    online.train()(torch.randn(256, 8), torch.randint(0, 2, (256, 1)))  # online statistics of the online weights
    ema.update(online)
    generator = ema.generator
    z, labels = torch.randn(2048, 8, generator=torch.Generator().manual_seed(1)), torch.randint(0, 2, (2048, 1))
    with torch.no_grad():
        in_eval = generator.eval()(z, labels)
        with_batch_statistics = copy.deepcopy(generator).train()(z, labels)
    assert (in_eval - with_batch_statistics).abs().mean() < 0.02
    buffers = [b.clone() for b in generator.buffers()]
    ema.restore(ema.shadow.state_dict(), ema.updates)  # a resume: the same weights give the same statistics
    assert all(torch.equal(a, b) for a, b in zip(buffers, ema.generator.buffers()))
    assert not all(torch.equal(a, b) for a, b in zip(buffers, online.buffers()))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        train_gan(np.zeros((4, 3, 16, 16), np.float32), TrainingConfig(), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=0)


R3GAN_SCHEDULED = {
    "architecture": "r3gan",
    "model": {"latent_dim": 8, "channel_base": 256, "channel_max": 16, "blocks_per_stage": 1, "group_width": 4},
    "loss": "rpgan",
    "r1_gamma": 1.0,
    "r2_gamma": 1.0,
    "r1_every": 1,
    "schedule_images": 48,
    "lr_final_ratio": 0.25,
    "gamma_final_ratio": 0.1,
    "beta2_final": 0.99,
}


@pytest.mark.parametrize("options", [{}, R3GAN_SCHEDULED], ids=["dcgan", "r3gan+rpgan+schedules"])
def test_resume_continues_exactly_where_the_run_stopped(faces_16: np.ndarray, tmp_path: Path, options: dict):
    """Two epochs straight == one epoch, stop, resume to two: same weights, same counters, one unbroken curve
    (R3GAN's schedules included: they are functions of the images seen, which the checkpoint holds)."""
    faces = faces_16[:32] if options else faces_16
    straight = train_gan(faces, TrainingConfig.from_dict({**TINY, **options, "epochs": 2}), progress=False)

    checkpoint = tmp_path / "last.pt"
    first_half = train_gan(
        faces, TrainingConfig.from_dict({**TINY, **options, "epochs": 1}), checkpoint_path=checkpoint, progress=False
    )
    resumed = train_gan(
        faces,
        TrainingConfig.from_dict({**TINY, **options, "epochs": 2}),
        checkpoint_path=checkpoint,
        resume=True,
        progress=False,
    )

    assert resumed.resumed_from_step == first_half.generator_steps > 0
    assert resumed.generator_steps == straight.generator_steps
    assert resumed.images_seen == straight.images_seen
    assert [row["step"] for row in resumed.history] == [row["step"] for row in straight.history]
    for name, tensor in straight.generator.state_dict().items():
        assert torch.equal(tensor, resumed.generator.state_dict()[name]), name


def test_a_checkpoint_of_another_model_is_not_resumed(faces_16: np.ndarray, tmp_path: Path):
    """More epochs continue a run; another width would load the wrong weights (or none): refused, naming both."""
    checkpoint = tmp_path / "last.pt"
    train_gan(
        faces_16[:32], TrainingConfig.from_dict({**TINY, "epochs": 1}), checkpoint_path=checkpoint, progress=False
    )
    wider = TrainingConfig.from_dict({**TINY, "model": {"latent_dim": 16, "width": 16}, "epochs": 2})
    with pytest.raises(ValueError, match=r"'width': 8.*'width': 16.*resume only the same model"):
        train_gan(faces_16[:32], wider, checkpoint_path=checkpoint, resume=True, progress=False)


class KillAtStep(RecordingMonitor):
    """Raises at a given step, like a pre-empted node: the step's checkpoint interval has not come round yet."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.kill_step = step

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step == self.kill_step:
            raise KeyboardInterrupt(f"killed at step {step}")


def test_a_run_killed_mid_epoch_resumes_from_its_last_checkpoint_exactly(faces_16: np.ndarray, tmp_path: Path):
    config = TrainingConfig.from_dict({**TINY, "epochs": 1, "batch_size": 8, "checkpoint_every_steps": 3})
    straight = train_gan(faces_16, config, progress=False)
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        train_gan(faces_16, config, checkpoint_path=checkpoint, monitor=KillAtStep(5), progress=False)
    assert load_checkpoint(checkpoint, torch.device("cpu"))["generator_steps"] == 3
    resumed = train_gan(faces_16, config, checkpoint_path=checkpoint, resume=True, progress=False)
    assert resumed.resumed_from_step == 3
    assert resumed.generator_steps == straight.generator_steps == len(faces_16) // 8
    for name, tensor in straight.generator.state_dict().items():
        assert torch.equal(tensor, resumed.generator.state_dict()[name]), name


_calls = {"n": 0}


def _nan_on_third_call(fake_logits: torch.Tensor) -> torch.Tensor:
    _calls["n"] += 1
    loss = generator_loss(fake_logits)
    return loss * float("nan") if _calls["n"] == 3 else loss


register_loss("test_nan_once", GanLoss(discriminator_loss, _nan_on_third_call))
register_loss("test_nan_always", GanLoss(discriminator_loss, lambda logits: generator_loss(logits) * float("nan")))


@pytest.mark.parametrize("log_every_steps", [1, 100], ids=["checked-every-step", "checked-at-epoch-end"])
def test_a_non_finite_loss_rolls_back_and_training_continues(faces_16: np.ndarray, log_every_steps: int):
    _calls["n"] = 0
    config = {**TINY, "epochs": 2, "loss": "test_nan_once", "log_every_steps": log_every_steps}
    result = train_gan(faces_16, TrainingConfig.from_dict(config), progress=False)
    assert result.rollbacks == 1
    assert result.generator_steps == 2 * (len(faces_16) // 16)
    assert all(np.isfinite(row["loss_g"]) for row in result.history)


def test_persistent_non_finite_losses_fail_clearly(faces_16: np.ndarray):
    config = TrainingConfig.from_dict({**TINY, "epochs": 1, "loss": "test_nan_always", "max_nan_rollbacks": 2})
    with pytest.raises(FloatingPointError, match="rolled back 2 times"):
        train_gan(faces_16, config, progress=False)


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "minimax"},
        {"loss": "hinge", "r1_gamma": 1.0, "r1_every": 2},
        {"loss": "wgan_gp", "model": {"latent_dim": 16, "width": 8, "norm": "layer"}},
        {"loss": "non_saturating", "diffaugment": "color,translation,cutout", "instance_noise": 0.1},
        {"precision": "bf16", "channels_last": True},
    ],
    ids=["minimax", "hinge+r1", "wgan_gp", "diffaugment+noise", "bf16+channels_last"],
)
def test_every_objective_and_engine_option_trains_finitely(faces_16: np.ndarray, options: dict):
    result = train_gan(faces_16[:64], TrainingConfig.from_dict({**TINY, "epochs": 1, **options}), progress=False)
    assert result.generator_steps == 4
    assert all(np.isfinite(row["loss_d"]) and np.isfinite(row["loss_g"]) for row in result.history)
    assert {"grad_norm_g", "grad_norm_d", "diversity_ratio", "d_accuracy_real"} <= result.history[0].keys()


@pytest.mark.parametrize("architecture", ["dcgan", "stylegan"])
def test_conditional_models_train_on_labelled_faces(faces_16: np.ndarray, architecture: str):
    """Attribute labels (gender, age_bin, ethnicity indices; −1 unknown) flow into G and the projection D."""
    labels = np.random.default_rng(0).integers(-1, 2, size=(len(faces_16), 3))
    model = {"conditioning": ["gender", "age_bin", "ethnicity"], "latent_dim": 16}
    if architecture == "stylegan":
        model |= {"w_dim": 16, "mapping_layers": 2, "channel_base": 256, "channel_max": 16}
        faces = np.ascontiguousarray(np.repeat(np.repeat(faces_16[:32], 2, axis=2), 2, axis=3))  # StyleGAN: ≥ 32 px
    else:
        model |= {"width": 8}
        faces = faces_16[:32]
    config = TrainingConfig.from_dict({**TINY, "architecture": architecture, "model": model, "epochs": 1})
    result = train_gan(faces, config, labels=labels[:32], progress=False)
    assert result.generator.conditional and result.generator_steps == 2
    with pytest.raises(ValueError, match="needs labels"):
        train_gan(faces, config, progress=False)


def test_sampler_weights_from_balancing_steer_which_images_are_drawn(faces_16: np.ndarray):
    """Balance's ``weights`` strategy: the trainer draws in proportion to them instead of a plain permutation."""
    weights = np.zeros(len(faces_16))
    weights[:8] = 1.0  # only the first 8 faces may be drawn
    order = epoch_order(len(faces_16), seed=0, epoch=0, weights=_sampling_weights(weights, len(faces_16)))
    assert len(order) == len(faces_16) and set(order.tolist()) <= set(range(8))
    assert _sampling_weights(np.ones(len(faces_16)), len(faces_16)) is None  # uniform = exact permutation
    result = train_gan(
        faces_16, TrainingConfig.from_dict({**TINY, "epochs": 1}), sample_weights=weights, progress=False
    )
    assert result.generator_steps == len(faces_16) // 16
    with pytest.raises(ValueError, match="sample_weights"):
        train_gan(faces_16, TrainingConfig.from_dict(TINY), sample_weights=-weights, progress=False)
