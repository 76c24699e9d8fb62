"""StyleGAN2 generator and discriminator at tiny widths: the interface, W-space truncation, w_avg, style mixing,
noise modes, minibatch std, projection conditioning, safe bundles, gradients and bf16/channels_last."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.losses import discriminator_loss, generator_loss
from facegen.models.registry import architectures, build_discriminator, build_generator
from facegen.models.sampling import base_seeds, faces_from_seeds
from facegen.models.stylegan import MinibatchStdLayer, StyleGANDiscriminator, StyleGANGenerator

TINY = {"latent_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 128, "channel_max": 16}
ALL_ATTRIBUTES = ["gender", "age_bin", "ethnicity"]


def tiny_generator(resolution: int = 32, **overrides) -> StyleGANGenerator:
    return build_generator("stylegan", {**TINY, "resolution": resolution, **overrides})


def tiny_discriminator(resolution: int = 32, **overrides) -> StyleGANDiscriminator:
    return build_discriminator("stylegan", {**TINY, "resolution": resolution, **overrides})


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes_range_and_style_count(resolution: int):
    generator, discriminator = tiny_generator(resolution), tiny_discriminator(resolution)
    assert generator.num_ws == 2 * resolution.bit_length() - 4  # 2·log2(R) − 2
    z = torch.randn(3, 16)
    ws = generator.mapping(z, None)
    assert ws.shape == (3, generator.num_ws, 16)
    assert generator.synthesis(ws).shape == (3, 3, resolution, resolution)
    assert discriminator(generator(z)).shape == (3,)
    images = generator.eval()(z)
    assert images.shape == (3, 3, resolution, resolution) and images.min() >= -1 and images.max() <= 1


def test_default_schedule_constructs_at_128():
    generator, discriminator = StyleGANGenerator(resolution=128), StyleGANDiscriminator(resolution=128)
    assert generator.num_ws == 12 and generator.latent_dim == 512
    assert [block.conv1.weight.shape[0] for block in generator.synthesis.blocks] == [512, 512, 512, 512, 512, 256]
    assert len(discriminator.blocks) == 5
    assert "stylegan" in architectures()


def test_truncation_to_zero_gives_the_average_face():
    generator = tiny_generator()
    generator.mapping(torch.randn(64, 16), None)  # training-mode pass: w_avg moves off zero
    generator.eval()
    faces = generator(torch.randn(4, 16), truncation_psi=0.0)
    assert all(torch.equal(face, faces[0]) for face in faces)
    average = generator.synthesis(generator.mapping.w_avg.expand(1, generator.num_ws, -1)).clamp(-1, 1)
    assert torch.allclose(faces[:1], average, atol=1e-6)
    z = torch.randn(3, 16)
    per_sample = generator(z, truncation_psi=torch.tensor([0.0, 0.5, 1.0]))  # one psi per face (service batches)
    for i, psi in enumerate((0.0, 0.5, 1.0)):
        assert torch.allclose(per_sample[i], generator(z[i : i + 1], truncation_psi=psi)[0], atol=1e-5)


def test_w_avg_tracks_training_passes_only():
    generator = tiny_generator()
    assert torch.count_nonzero(generator.mapping.w_avg) == 0
    generator(torch.randn(8, 16))
    moved = generator.mapping.w_avg.clone()
    assert torch.count_nonzero(moved) > 0
    generator.eval()(torch.randn(8, 16))
    assert torch.equal(generator.mapping.w_avg, moved)


def test_style_mixing_only_when_enabled_and_training():
    mixing = tiny_generator(style_mixing_prob=1.0)
    plain = tiny_generator(style_mixing_prob=0.0)
    plain.load_state_dict(mixing.state_dict())
    z = torch.randn(2, 16)
    unmixed = mixing.synthesis(mixing.mapping(z, None), noise_mode="const")
    assert torch.equal(plain(z, noise_mode="const"), unmixed)
    assert not torch.allclose(mixing(z, noise_mode="const"), unmixed)
    assert torch.equal(mixing.eval()(z), unmixed.clamp(-1, 1))


def test_noise_modes():
    generator = tiny_generator()
    for name, parameter in generator.named_parameters():
        if name.endswith("noise_strength"):
            parameter.data.fill_(0.5)  # trained models use their noise; the initial strength is zero
    ws = generator.mapping(torch.randn(2, 16), None)
    assert torch.equal(generator.synthesis(ws, noise_mode="const"), generator.synthesis(ws, noise_mode="const"))
    assert torch.equal(generator.synthesis(ws, noise_mode="none"), generator.synthesis(ws, noise_mode="none"))
    assert not torch.equal(generator.synthesis(ws, noise_mode="random"), generator.synthesis(ws, noise_mode="random"))
    assert not torch.equal(generator.synthesis(ws, noise_mode="const"), generator.synthesis(ws, noise_mode="none"))
    generator.eval()
    assert torch.equal(generator.synthesis(ws), generator.synthesis(ws, noise_mode="const"))  # eval default
    with pytest.raises(ValueError, match="noise_mode"):
        generator.synthesis(ws, noise_mode="loud")


def test_minibatch_std_groups_any_batch_size():
    layer = MinibatchStdLayer(group_size=4)
    x = torch.randn(6, 2, 4, 4)
    feature = layer(x)[:, -1, 0, 0]
    expected = [x[:4].std(dim=0, unbiased=False).mean(), x[4:].std(dim=0, unbiased=False).mean()]
    assert torch.allclose(feature, torch.stack([expected[0]] * 4 + [expected[1]] * 2), atol=1e-4)
    lone_joins = layer(x[:5])[:, -1, 0, 0]  # 5 = 4 + a lone sample, which joins the first group
    assert torch.allclose(lone_joins, x[:5].std(dim=0, unbiased=False).mean().expand(5), atol=1e-4)
    discriminator = tiny_discriminator()
    for batch in (1, 5, 6, 7):
        assert discriminator(torch.randn(batch, 3, 32, 32)).shape == (batch,)


def test_conditional_models_follow_labels():
    generator = tiny_generator(conditioning=ALL_ATTRIBUTES).eval()
    discriminator = tiny_discriminator(conditioning=ALL_ATTRIBUTES)
    assert generator.conditional and generator.label_dims == {"gender": 2, "age_bin": 9, "ethnicity": 5}
    z = torch.randn(1, 16).expand(3, -1)
    labels = torch.tensor([[0, 3, 0], [1, 3, 0], [0, -1, -1]])  # the last: "female, any age, any ethnicity"
    images = generator(z, labels)
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[0], images[2])
    logits = discriminator(images[:1].expand(2, -1, -1, -1), labels[:2])
    assert logits[0] != logits[1]
    with pytest.raises(ValueError, match="pass labels"):
        generator(z)
    with pytest.raises(ValueError, match="label indices"):
        generator(z, torch.tensor([[0, 9, 0]] * 3))  # age_bin has 9 values: 0..8
    with pytest.raises(ValueError, match="unconditional"):
        tiny_generator()(z, labels)
    with pytest.raises(ValueError, match="unconditional"):
        tiny_discriminator()(images, labels)


def test_unknown_labels_add_nothing_to_the_discriminator():
    discriminator = tiny_discriminator(conditioning=ALL_ATTRIBUTES)
    images = torch.randn(2, 3, 32, 32)
    unknown = discriminator(images, torch.full((2, 3), -1))
    discriminator.projection = None  # the realism logit alone
    assert torch.allclose(unknown, discriminator(images, torch.full((2, 3), -1)))


def test_bundle_round_trip_with_safe_loading(tmp_path: Path):
    config = {**TINY, "resolution": 32, "conditioning": ALL_ATTRIBUTES}
    generator = build_generator("stylegan", config)
    generator(torch.randn(16, 16), torch.zeros(16, 3, dtype=torch.long))  # a training pass sets w_avg
    save_generator_bundle(tmp_path, "stylegan", config, generator)
    state = torch.load(tmp_path / "generator.pt", weights_only=True)
    assert torch.equal(state["mapping.w_avg"], generator.mapping.w_avg)
    reloaded = load_generator_bundle(tmp_path)
    for psi in (1.0, 0.5):
        kwargs = {"labels": [1, -1, 2], "truncation_psi": psi}
        seeds = base_seeds(3, 4)
        assert (faces_from_seeds(reloaded, seeds, **kwargs) == faces_from_seeds(generator, seeds, **kwargs)).all()


def test_a_few_steps_reduce_the_losses_through_every_layer():
    generator = tiny_generator(style_mixing_prob=0.0, conditioning=ALL_ATTRIBUTES)
    discriminator = tiny_discriminator(conditioning=ALL_ATTRIBUTES)
    z, real = torch.randn(8, 16), torch.rand(8, 3, 32, 32) * 2 - 1
    labels = torch.tensor([[0, 1, 2], [1, -1, 4], [-1, 8, 0], [1, 4, -1]] * 2)

    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    fake = generator(z, labels, noise_mode="const").detach()
    d_losses = []
    for _ in range(5):
        loss = discriminator_loss(discriminator(real, labels), discriminator(fake, labels))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        d_losses.append(loss.item())
    assert d_losses[-1] < d_losses[0]

    discriminator.requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    g_losses = []
    for step in range(5):
        loss = generator_loss(discriminator(generator(z, labels, noise_mode="random"), labels))
        opt_g.zero_grad()
        loss.backward()
        if step == 0:
            silent = [name for name, p in generator.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not silent, f"no gradient reaches {silent}"
        opt_g.step()
        g_losses.append(loss.item())
    assert g_losses[-1] < g_losses[0]


def test_bf16_autocast_and_channels_last():
    generator = tiny_generator().to(memory_format=torch.channels_last)
    discriminator = tiny_discriminator().to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = discriminator(generator(torch.randn(4, 16)).contiguous(memory_format=torch.channels_last))
        loss = generator_loss(logits)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
