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
