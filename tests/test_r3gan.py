"""R3GAN (Huang et al. 2024): the normalisation-free grouped-conv ResNet pair, the RpGAN loss with R1 + R2, its
cosine schedules, and one conditional run through the trainer to a bundle that draws faces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import facegen.train.loop as loop_module
from facegen.config_render import load_overlay, merge
from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.losses import get_loss, zero_centred_penalty
from facegen.models.r3gan import R3GANDiscriminator, R3GANGenerator, ResidualBlock
from facegen.models.registry import build_discriminator, build_generator
from facegen.models.sampling import faces_from_seeds
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan
from facegen.train.schedule import cosine_ramp, knobs_at

ALL_ATTRIBUTES = ["gender", "age_bin", "ethnicity"]
#: 16 channels up to 64², then halving (4 at 256²): enough for shapes, cheap on two cores.
TINY = {"latent_dim": 8, "channel_base": 1024, "channel_max": 16, "blocks_per_stage": 1, "group_width": 4}


@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_one_stage_per_resolution_from_4_to_r_in_both_networks(resolution: int):
    generator = R3GANGenerator(resolution=resolution, **TINY)
    discriminator = R3GANDiscriminator(resolution=resolution, **{k: v for k, v in TINY.items() if k != "latent_dim"})
    stages = int(math.log2(resolution)) - 1
    channels = [min(1024 // r, 16) for r in (2**i for i in range(2, stages + 2))]
    assert generator.stage_shapes == [(c, 2 ** (i + 2), 2 ** (i + 2)) for i, c in enumerate(channels)]
    assert [shape[0] for shape in discriminator.stage_shapes] == channels[-2::-1] + [channels[0]]
    images = generator(torch.randn(2, 8))
    assert images.shape == (2, 3, resolution, resolution)
    assert discriminator(images).shape == (2,)


def test_the_papers_ffhq_widths_are_the_defaults():
    """FFHQ-64: 768 channels from 4² to 32², 384 at 64², 2 blocks a stage, 3×3 convs in groups of 16 channels."""
    generator = R3GANGenerator(resolution=64)
    assert [shape[0] for shape in generator.stage_shapes] == [768, 768, 768, 768, 384]
    blocks = [m for m in generator.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 10
    assert blocks[0].grouped.groups == 96 and blocks[-1].grouped.groups == 48  # 1536 / 16 and 768 / 16
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._NormBase | torch.nn.GroupNorm) for m in generator.modules()
    )


def test_fixup_initialisation_makes_every_residual_block_start_as_the_identity():
    generator = R3GANGenerator(resolution=32, **TINY)
    blocks = [m for m in generator.modules() if isinstance(m, ResidualBlock)]
    x = torch.randn(3, blocks[0].expand.in_channels, 4, 4)
    assert torch.equal(blocks[0](x), x)
    # Inner layers: He init scaled by L^(-1/4) for L = 4 blocks of m = 3 layers (Sec. 3.3's fix-up rule).
    big = ResidualBlock(channels=256, expansion=2, group_width=16, total_blocks=16)
    expected = math.sqrt(2 / (1 + 0.2**2)) * 16 ** (-1 / 4) / math.sqrt(256)
    assert float(big.expand.weight.detach().std()) == pytest.approx(expected, rel=0.02)
    assert not big.project.weight.any()


@pytest.mark.parametrize("resolution", [48, 4, 2048, 0])
def test_a_resolution_that_is_not_a_supported_power_of_two_is_a_clear_error(resolution: int):
    with pytest.raises(ValueError, match=r"r3gan resolution must be a power of two from 8 to 1024"):
        build_generator("r3gan", {"resolution": resolution})


def test_widths_that_do_not_split_into_groups_are_a_clear_error():
    with pytest.raises(ValueError, match=r"do not split into groups of group_width=5"):
        build_discriminator("r3gan", {**TINY, "resolution": 32, "group_width": 5})
    with pytest.raises(ValueError, match=r"unknown r3gan model key\(s\) \['width'\]"):
        build_generator("r3gan", {"resolution": 32, "width": 8})


def test_conditional_pair_takes_labels_and_truncation_works_in_z():
    generator = R3GANGenerator(resolution=32, conditioning=ALL_ATTRIBUTES, **TINY).eval()
    discriminator = R3GANDiscriminator(
        resolution=32, conditioning=ALL_ATTRIBUTES, **{k: v for k, v in TINY.items() if k != "latent_dim"}
    )
    labels = torch.tensor([[0, 3, -1], [1, -1, 4]])
    images = generator(torch.randn(2, 8), labels)
    assert images.min() >= -1 and images.max() <= 1  # eval mode clamps; training mode does not
    assert discriminator(images, labels).shape == (2,)
    with pytest.raises(ValueError, match="pass labels"):
        generator(torch.randn(2, 8))
    mean_faces = generator(torch.randn(2, 8), labels[[0, 0]], truncation_psi=0.0)
    assert torch.equal(mean_faces[0], mean_faces[1])  # psi = 0: every z becomes the mean latent


def test_r1_and_r2_differentiate_the_discriminators_input_gradient():
    discriminator = R3GANDiscriminator(resolution=16, **{k: v for k, v in TINY.items() if k != "latent_dim"})
    images = torch.randn(4, 3, 16, 16, requires_grad=True)
    penalty = zero_centred_penalty(discriminator(images), images)
    penalty.backward()  # twice-differentiable all through: grouped convs, fixed-filter resampling, bias-act
    assert penalty > 0
    # At fix-up init the branches are zero, so the penalty trains their last layers (and the stem, the basis).
    trained = {name for name, p in discriminator.named_parameters() if p.grad is not None and p.grad.any()}
    assert {"from_rgb.weight", "classifier.weight"} | {f"stages.{i}.0.project.weight" for i in range(3)} <= trained


def test_rpgan_compares_each_real_logit_with_its_paired_fake():
    rpgan = get_loss("rpgan")
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    assert rpgan.paired
    assert float(rpgan.discriminator(real, fake)) == pytest.approx((softplus(-2.0) + softplus(1.0)) / 2)
    assert float(rpgan.generator(fake, real)) == pytest.approx((softplus(2.0) + softplus(-1.0)) / 2)
    shifted = rpgan.discriminator(real + 5, fake + 5)
    assert float(shifted) == pytest.approx(float(rpgan.discriminator(real, fake)))  # only differences count
    with pytest.raises(ValueError, match="as many real as fake"):
        rpgan.discriminator(real, torch.zeros(3))


def test_cosine_schedules_move_from_start_to_final_over_the_images_seen():
    assert cosine_ramp(2.0, 0.2, 0, 100) == 2.0
    assert cosine_ramp(2.0, 0.2, 50, 100) == pytest.approx(1.1)  # half-way in images, half-way in value
    assert cosine_ramp(2.0, 0.2, 100, 100) == cosine_ramp(2.0, 0.2, 10**9, 100) == pytest.approx(0.2)
    assert cosine_ramp(2.0, 0.2, 50, 0) == 2.0  # no schedule
    config = TrainingConfig(
        lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9), r1_gamma=2.0, r2_gamma=2.0, diffaugment_p=0.0,
        schedule_images=1000, lr_final_ratio=0.25, gamma_final_ratio=0.1, beta2_final=0.99, diffaugment_p_final=0.3,
    )  # fmt: skip
    start, end = knobs_at(config, 0), knobs_at(config, 1000)
    assert (start.lr_g, start.beta2, start.r1_gamma, start.r2_gamma, start.diffaugment_p) == (2e-4, 0.9, 2, 2, 0)
    assert end.lr_d == pytest.approx(5e-5) and end.beta2 == pytest.approx(0.99)
    assert end.r1_gamma == end.r2_gamma == pytest.approx(0.2) and end.diffaugment_p == pytest.approx(0.3)
    with pytest.raises(ValueError, match="diffaugment_p_final must lie in"):
        TrainingConfig(diffaugment_p_final=1.5)


R3GAN_OVERLAY = """
steps:
  train_gan:
    parameters:
      training:
        architecture: r3gan
        model: !replace {latent_dim: 64, channel_base: 2048, channel_max: 64, blocks_per_stage: 1,
                         conditioning: [gender, age_bin, ethnicity]}
        loss: rpgan
        r1_gamma: 0.2
        r2_gamma: 0.2
        betas: [0.0, 0.9]
        schedule_images: 1000000
        beta2_final: 0.99
"""


def test_a_pipeline_config_selects_r3gan_and_rpgan_by_config_alone():
    base = yaml.safe_load((Path(__file__).parents[1] / "configs" / "base.yaml").read_text())
    merged = merge(base, load_overlay(R3GAN_OVERLAY))
    config = TrainingConfig.from_dict(merged["steps"]["train_gan"]["parameters"]["training"])
    assert (config.architecture, config.loss, config.r2_gamma, config.beta2_final) == ("r3gan", "rpgan", 0.2, 0.99)
    generator = build_generator(config.architecture, {**config.model, "resolution": 32})
    assert isinstance(generator, R3GANGenerator) and generator.conditional
    assert TrainingConfig.from_dict(base["steps"]["train_gan"]["parameters"]["training"]).architecture == "dcgan"


@pytest.fixture(scope="module")
def faces_and_labels(real_faces_32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.random.default_rng(0).integers(-1, 2, size=(32, 3))
    return real_faces_32[:32], labels


def test_r3gan_trains_conditionally_with_rpgan_r1_r2_and_its_schedules_and_its_bundle_draws_faces(
    faces_and_labels: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Selected by config alone; R2 is applied at generated images alongside R1; the schedule reaches the optimisers."""
    penalties: list[bool] = []

    def recording_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        penalties.append(bool(images.requires_grad))
        return zero_centred_penalty(logits, images)

    monkeypatch.setattr(loop_module, "zero_centred_penalty", recording_penalty)
    faces, labels = faces_and_labels
    config = TrainingConfig.from_dict(
        {
            "architecture": "r3gan",
            "model": {**TINY, "conditioning": ALL_ATTRIBUTES},
            "loss": "rpgan",
            "r1_gamma": 1.0,
            "r2_gamma": 1.0,
            "r1_every": 1,
            "betas": [0.0, 0.9],
            "diffaugment": "translation",
            "diffaugment_p": 0.0,
            "schedule_images": 32,
            "lr_final_ratio": 0.25,
            "beta2_final": 0.99,
            "diffaugment_p_final": 0.3,
            "epochs": 2,
            "batch_size": 16,
            "grid_size": 4,
            "log_every_steps": 1,
        }
    )
    result = train_gan(faces, config, labels=labels, checkpoint_path=tmp_path / "last.pt", progress=False)
    assert result.generator_steps == 4 and result.generator.conditional
    assert all(np.isfinite(row["loss_d"]) and np.isfinite(row["loss_g"]) for row in result.history)
    assert len(penalties) == 2 * 4  # R1 and R2 at every D step (r1_every = 1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(0.5e-4)  # 48 of 32 scheduled images seen
    assert state["opt_g"]["param_groups"][0]["betas"] == pytest.approx((0.0, 0.99))

    bundle = save_generator_bundle(tmp_path / "bundle", "r3gan", result.model_config, result.generator)
    loaded = load_generator_bundle(bundle)
    faces_out = faces_from_seeds(loaded, [7, 8, 7], labels=[1, 2, -1])
    assert faces_out.shape == (3, 3, 32, 32) and faces_out.dtype == np.uint8
    assert np.array_equal(faces_out[0], faces_out[2]) and not np.array_equal(faces_out[0], faces_out[1])
