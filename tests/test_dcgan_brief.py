"""The brief's DCGAN pair exactly (architecture ``dcgan_brief``): its feature maps at 64², the first block of each
network dropped at 32², stride-2 Conv2d + BatchNorm2d + ReLU discriminator blocks and one logit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facegen.models.registry import build_discriminator, build_generator
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan
from tests.test_models import _feature_shapes

BRIEF_G = {
    64: [(1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 64, 64)],
    32: [(512, 4, 4), (256, 8, 8), (128, 16, 16), (3, 32, 32)],
}
BRIEF_D = {
    64: [(128, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4)],
    32: [(256, 16, 16), (512, 8, 8), (1024, 4, 4)],
}


@pytest.mark.parametrize("resolution", [64, 32])
def test_the_briefs_feature_maps(resolution: int):
    generator = build_generator("dcgan_brief", {"resolution": resolution}).eval()
    discriminator = build_discriminator("dcgan_brief", {"resolution": resolution}).eval()
    assert generator.latent_dim == 100
    assert _feature_shapes(generator.net, torch.randn(2, 100, 1, 1), (nn.ConvTranspose2d,)) == BRIEF_G[resolution]
    assert isinstance(generator.net[-1], nn.Tanh)
    assert (
        _feature_shapes(discriminator.features, torch.randn(2, 3, resolution, resolution), (nn.ReLU,))
        == BRIEF_D[resolution]
    )
    kinds = [type(layer) for layer in discriminator.features]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * len(BRIEF_D[resolution])  # every block, the first too
    assert all(conv.stride == (2, 2) for conv in discriminator.features if isinstance(conv, nn.Conv2d))
    assert (discriminator.classifier.in_features, discriminator.classifier.out_features) == (1024 * 4 * 4, 1)
    logits = discriminator(generator(torch.randn(3, 100)))
    assert logits.shape == (3,)
    face = generator(torch.zeros(1, 100))
    assert torch.allclose(discriminator.probability(face), torch.sigmoid(discriminator(face)))  # the brief's sigmoid


def test_other_resolutions_and_other_knobs_are_refused():
    with pytest.raises(ValueError, match=r"dcgan_brief is defined at \(32, 64\) pixels only, got 128"):
        build_generator("dcgan_brief", {"resolution": 128})
    with pytest.raises(ValueError, match=r"unknown dcgan_brief model key\(s\) \['width'\]"):
        build_discriminator("dcgan_brief", {"resolution": 64, "width": 32})  # the brief's widths are fixed


def test_the_brief_pair_trains_conditionally_through_the_loop(real_faces_32: np.ndarray):
    labels = np.random.default_rng(0).integers(-1, 2, size=(32, 3))
    config = TrainingConfig.from_dict(
        {
            "architecture": "dcgan_brief",
            "model": {"conditioning": ["gender", "age_bin", "ethnicity"]},
            "epochs": 1,
            "batch_size": 16,
            "grid_size": 4,
        }
    )
    result = train_gan(real_faces_32[:32], config, labels=labels, progress=False)
    assert result.generator_steps == 2 and result.generator.conditional
    assert all(np.isfinite(row["loss_d"]) for row in result.history)
