"""The brief's DCGAN: its exact feature-map figures at 64×64, depth following N, selectable normalisation."""

from __future__ import annotations

import pytest
import torch

from facegen.models.dcgan import NORMALISATIONS, DCGANDiscriminator, DCGANGenerator
from facegen.models.registry import architectures, build_discriminator, build_generator


def _feature_shapes(module: torch.nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[tuple[int, ...]]:
    shapes = []
    for layer in module:
        x = layer(x)
        if isinstance(layer, kinds):
            shapes.append(tuple(x.shape[1:]))
    return shapes


def test_generator_at_64_has_the_briefs_feature_maps():
    generator = DCGANGenerator(resolution=64, latent_dim=100, width=64)
    shapes = _feature_shapes(generator.net, torch.randn(2, 100, 1, 1), (torch.nn.ConvTranspose2d,))
    assert shapes == [(1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 64, 64)]
    assert isinstance(generator.net[-1], torch.nn.Tanh)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules()) == 4


@pytest.mark.parametrize("resolution", [8, 16, 32, 128])
def test_depth_follows_resolution(resolution: int):
    generator = DCGANGenerator(resolution=resolution, width=8)
    discriminator = DCGANDiscriminator(resolution=resolution, width=8)
    blocks = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in generator.modules())
    assert blocks == resolution.bit_length() - 2  # 4×4 stem + one block per doubling
    images = generator(torch.randn(3, 100))
    assert images.shape == (3, 3, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (3,)
    probabilities = discriminator.probability(images)
    assert ((probabilities > 0) & (probabilities < 1)).all()


@pytest.mark.parametrize("norm", NORMALISATIONS)
def test_normalisation_is_selectable(norm: str):
    generator = build_generator("dcgan", {"resolution": 16, "width": 8, "norm": norm})
    discriminator = build_discriminator("dcgan", {"resolution": 16, "width": 8, "norm": norm, "latent_dim": 100})
    assert discriminator(generator(torch.randn(2, 100))).shape == (2,)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(resolution=48)
    with pytest.raises(ValueError, match="unknown normalisation"):
        DCGANGenerator(resolution=16, norm="spectral")
    with pytest.raises(ValueError, match="unknown architecture"):
        build_generator("no-such-gan", {})
    assert "dcgan" in architectures()


def test_a_model_key_no_network_accepts_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"unknown dcgan model key\(s\) \['widht'\]; allowed: .*'width'"):
        build_generator("dcgan", {"resolution": 16, "widht": 8})
    with pytest.raises(ValueError, match=r"\['w_dim'\]"):  # a StyleGAN knob in a DCGAN config
        build_discriminator("dcgan", {"resolution": 16, "w_dim": 64})
    build_discriminator("dcgan", {"resolution": 16, "width": 8, "latent_dim": 100})  # G's keys are fine for D


# Conditional DCGAN: label embeddings appended to z, projection discriminator, z-space truncation.

ALL_ATTRIBUTES = ["gender", "age_bin", "ethnicity"]
SMALL = {"resolution": 16, "width": 8, "latent_dim": 16}


def test_conditioning_builds_label_dims_in_vocabulary_order():
    generator = DCGANGenerator(**SMALL, conditioning=["ethnicity", "gender"])
    assert generator.conditional and generator.label_dims == {"gender": 2, "ethnicity": 5}
    assert not DCGANGenerator(**SMALL).conditional and DCGANGenerator(**SMALL).label_dims == {}
    with pytest.raises(ValueError, match="unknown conditioning"):
        DCGANGenerator(**SMALL, conditioning=["hair_colour"])


def test_conditional_generator_follows_its_labels():
    torch.manual_seed(0)
    generator = build_generator("dcgan", {**SMALL, "conditioning": ALL_ATTRIBUTES}).eval()
    z = torch.randn(1, 16).expand(3, -1)
    labels = torch.tensor([[0, 3, 0], [1, 3, 0], [0, -1, -1]])  # female 20-29 White, male …, female any age/ethnicity
    images = generator(z, labels)
    assert images.shape == (3, 3, 16, 16) and images.abs().max() <= 1
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[0], images[2])
    with pytest.raises(ValueError, match="pass labels"):
        generator(z)
    with pytest.raises(ValueError, match="label indices"):
        generator(z, torch.tensor([[2, 0, 0]] * 3))  # gender has two values
    with pytest.raises(ValueError, match="unconditional"):
        DCGANGenerator(**SMALL)(z, labels)


def test_projection_discriminator_depends_on_labels_and_ignores_unknown():
    torch.manual_seed(0)
    discriminator = build_discriminator("dcgan", {**SMALL, "conditioning": ALL_ATTRIBUTES}).eval()
    image = torch.rand(1, 3, 16, 16).expand(2, -1, -1, -1) * 2 - 1
    logits = discriminator(image, torch.tensor([[0, 2, 1], [1, 5, 4]]))
    assert logits.shape == (2,) and logits[0] != logits[1]
    unknown = discriminator(image[:1], torch.tensor([[-1, -1, -1]]))
    realism_only = discriminator.classifier(discriminator.features(image[:1]).flatten(1)).squeeze(1)
    assert torch.allclose(unknown, realism_only)
    with pytest.raises(ValueError, match="unconditional"):
        build_discriminator("dcgan", SMALL)(image, torch.zeros(2, 3, dtype=torch.long))


def test_dcgan_truncation_scales_z_toward_zero():
    generator = DCGANGenerator(**SMALL).eval()
    z = torch.randn(4, 16)
    mean_face = generator(torch.zeros(4, 16))
    assert torch.equal(generator(z, truncation_psi=0.0), mean_face)
    assert torch.allclose(generator(z, truncation_psi=0.5), generator(z * 0.5))
    assert torch.equal(generator(z, truncation_psi=1.0), generator(z))
    per_sample = generator(z, truncation_psi=torch.tensor([0.0, 0.5, 1.0, 1.0]))
    assert torch.allclose(per_sample, generator(z * torch.tensor([0.0, 0.5, 1.0, 1.0])[:, None]))


# One call signature for every registered generator: what sampling, training and serving call.

SMALL_BY_ARCHITECTURE = {
    "dcgan": SMALL,
    "stylegan": {"resolution": 16, "latent_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_max": 16},
    "r3gan": {"resolution": 16, "latent_dim": 16, "channel_base": 128, "channel_max": 8, "group_width": 4},
    "dcgan_brief": {"resolution": 32},
}


@pytest.mark.parametrize("conditioning", [None, ALL_ATTRIBUTES], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("architecture", architectures())
def test_every_generator_is_called_with_latents_labels_and_psi(architecture: str, conditioning: list[str] | None):
    config = {**SMALL_BY_ARCHITECTURE[architecture], **({"conditioning": conditioning} if conditioning else {})}
    generator = build_generator(architecture, config).eval()
    assert generator.conditional is bool(conditioning) and list(generator.label_dims) == (conditioning or [])
    labels = torch.full((2, len(conditioning)), -1) if conditioning else None  # −1: every attribute unspecified
    images = generator(torch.zeros(2, generator.latent_dim), labels, truncation_psi=0.5)
    assert images.shape == (2, 3, generator.resolution, generator.resolution)
