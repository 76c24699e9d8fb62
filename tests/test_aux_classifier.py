"""AC-GAN class heads (TrainingConfig ``aux_classifier_weight``): off by default and then the trainer is unchanged;
on, D learns the real faces' labels, unknown (−1) labels count for nothing, and G is pushed toward what it was asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.models.losses import auxiliary_classification_loss
from facegen.models.registry import architectures, build_discriminator, class_head_architectures
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan

CONDITIONING = ["gender", "ethnicity"]  # label columns in this order; 2 and 5 classes
TINY = {
    "model": {"latent_dim": 16, "width": 8, "conditioning": CONDITIONING},
    "batch_size": 16,
    "grid_size": 4,
    "log_every_steps": 1,
    "label_dropout": 0.0,
    "augment": {"flip_p": 0.0, "max_rotation_deg": 0.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0},
    "device": "cpu",
}
BLUE_LEVELS = np.array([20, 70, 125, 180, 235])  # ethnicity k is coded by the blue channel


def colour_coded(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16² noise images whose labels are in their colours: red high iff gender 1, blue at one of 5 levels."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, 2, n), rng.integers(0, 5, n)], axis=1)
    images = rng.integers(0, 60, size=(n, 3, 16, 16)) + 100
    images[:, 0] = np.where(labels[:, :1, None] == 1, 220, 30) + rng.integers(-15, 15, size=(n, 16, 16))
    images[:, 2] = BLUE_LEVELS[labels[:, 1]][:, None, None] + rng.integers(-10, 10, size=(n, 16, 16))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def test_weight_zero_builds_the_plain_discriminator_and_trains_exactly_as_without_the_knob():
    images, labels = colour_coded(32)
    plain = train_gan(images, TrainingConfig.from_dict({**TINY, "epochs": 1}), labels=labels, progress=False)
    zero = train_gan(
        images,
        TrainingConfig.from_dict({**TINY, "epochs": 1, "aux_classifier_weight": 0.0}),
        labels=labels,
        progress=False,
    )
    assert zero.discriminator.class_heads is None
    torch.manual_seed(0)
    reference = build_discriminator("dcgan", {**TINY["model"], "resolution": 16})
    assert zero.discriminator.state_dict().keys() == reference.state_dict().keys()  # no extra parameters
    for name, tensor in plain.generator.state_dict().items():
        assert torch.equal(tensor, zero.generator.state_dict()[name]), name
    assert not any(key.startswith("aux_") for row in zero.history for key in row)


def test_heads_get_gradients_and_an_unknown_column_contributes_nothing():
    torch.manual_seed(0)
    discriminator = build_discriminator("dcgan", {**TINY["model"], "resolution": 16, "class_heads": True})
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    labels = torch.tensor([[0, 1], [1, 4], [0, 0], [1, 2], [0, 3], [1, 1]])
    unknown_ethnicity = labels.clone()
    unknown_ethnicity[:, 1] = -1
    logits, classes = discriminator(images, unknown_ethnicity, return_classes=True)
    assert logits.shape == (6,) and classes["gender"].shape == (6, 2) and classes["ethnicity"].shape == (6, 5)
    loss = auxiliary_classification_loss(classes, unknown_ethnicity)
    gender_only = torch.nn.functional.cross_entropy(classes["gender"], labels[:, 0])
    assert torch.allclose(loss, gender_only)
    loss.backward()
    heads = discriminator.class_heads.heads
    assert heads["gender"].weight.grad.abs().sum() > 0
    assert heads["ethnicity"].weight.grad.abs().sum() == 0
    assert torch.equal(auxiliary_classification_loss(classes, torch.full((6, 2), -1)), torch.tensor(0.0))


def test_the_knob_needs_a_conditional_model_and_a_non_negative_weight():
    unconditional = {**TINY, "model": {"latent_dim": 16, "width": 8}}
    with pytest.raises(ValueError, match="aux_classifier_weight > 0 needs a conditional model"):
        TrainingConfig.from_dict({**unconditional, "aux_classifier_weight": 1.0})
    with pytest.raises(ValueError, match="aux_classifier_weight must be >= 0"):
        TrainingConfig.from_dict({**TINY, "aux_classifier_weight": -0.5})
    with pytest.raises(ValueError, match="class heads need a conditional model"):
        build_discriminator("dcgan", {"resolution": 16, "class_heads": True})
    assert class_head_architectures() == architectures()  # every registered discriminator has them
    for name in architectures():
        discriminator = build_discriminator(name, {"resolution": 32, "conditioning": CONDITIONING, "class_heads": True})
        _, classes = discriminator(torch.zeros(2, 3, 32, 32), torch.tensor([[0, 1], [1, -1]]), return_classes=True)
        assert {k: tuple(v.shape) for k, v in classes.items()} == {"gender": (2, 2), "ethnicity": (2, 5)}, name


def test_the_heads_learn_colour_coded_classes_and_steer_the_generator():
    """Trained without the class term (weight 0), this generator's blue is flat across requested ethnicities."""
    images, labels = colour_coded(256)
    fast = {"lr_g": 2e-3, "lr_d": 2e-3, "ema_decay": 0.9}  # 64 steps: enough for colours at this learning rate
    config = TrainingConfig.from_dict({**TINY, **fast, "epochs": 4, "aux_classifier_weight": 1.0})
    result = train_gan(images, config, labels=labels, progress=False)
    late = result.history[-8:]
    assert np.mean([row["aux_accuracy_real_gender"] for row in late]) > 0.9  # chance: 0.5
    assert np.mean([row["aux_accuracy_real_ethnicity"] for row in late]) > 0.5  # chance: 0.2
    assert all(np.isfinite(row["aux_loss_g"]) and np.isfinite(row["aux_loss_d"]) for row in result.history)
    asked = torch.tensor([[gender, ethnicity] for gender in (0, 1) for ethnicity in range(5) for _ in range(8)])
    with torch.no_grad():
        faces = result.generator(torch.randn(80, 16, generator=torch.Generator().manual_seed(1)), asked)
    red, blue = faces[:, 0].mean(dim=(1, 2)), faces[:, 2].mean(dim=(1, 2))  # on the [-1, 1] scale
    assert red[asked[:, 0] == 1].mean() - red[asked[:, 0] == 0].mean() > 0.2  # "gender 1" faces are redder
    blue_by_ethnicity = torch.stack([blue[asked[:, 1] == k].mean() for k in range(5)])
    assert (blue_by_ethnicity.diff() > 0).all() and blue_by_ethnicity[-1] - blue_by_ethnicity[0] > 0.2
