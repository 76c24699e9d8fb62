"""FID during training: the tracker scores the generator it is given against cached real features, records FID
against training minutes with its own evaluation time left out, and the config only allows intervals that land on
logging steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facegen.metrics.features import RealFeatures
from facegen.metrics.fidelity import frechet_distance
from facegen.models.registry import build_generator
from facegen.train.config import TrainingConfig
from facegen.train.fid_tracker import TrainingFID, plot_fid_curve

WEIGHTS = "weights/pt_inception-2015-12-05-fid.pth"


@pytest.fixture(scope="module")
def real(real_faces_32: np.ndarray, facegen_home: Path) -> RealFeatures:
    return RealFeatures.from_images(real_faces_32[:24], weights_path=facegen_home / WEIGHTS)


class _Clock:
    """Seconds that pass only when a test says so: training time is set by the test, evaluation time by the model."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _ClockedGenerator(nn.Module):
    """A real generator whose every forward pass advances the clock by ``seconds``: a known evaluation time."""

    def __init__(self, inner: nn.Module, clock: _Clock, seconds: float) -> None:
        super().__init__()
        self.inner, self.clock, self.seconds = inner, clock, seconds
        self.latent_dim, self.label_dims = inner.latent_dim, inner.label_dims

    def forward(self, z: torch.Tensor, labels=None, truncation_psi: float = 1.0) -> torch.Tensor:
        self.clock.now += self.seconds
        return self.inner(z, labels, truncation_psi=truncation_psi)


def test_tracker_records_fid_against_training_minutes(real: RealFeatures, facegen_home: Path) -> None:
    clock = _Clock()
    inner = build_generator("dcgan", {"resolution": 32, "latent_dim": 16, "width": 8})
    generator = _ClockedGenerator(inner, clock, seconds=3.0)
    options = {"kid_subset_size": 4, "kid_subsets": 3, "prc_neighborhood": 3}  # also KID, precision/recall
    tracker = TrainingFID(real, facegen_home / WEIGHTS, num_samples=8, seed=3, clock=clock, fidelity_options=options)
    clock.now += 60.0  # one minute of "training" before the first evaluation
    first = tracker(generator)
    clock.now += 120.0  # two more
    second = tracker(generator)
    assert first == pytest.approx(second)  # same latents, same weights: the curve moves only when the model does
    assert first > 100 and frechet_distance(real.features, real.features) == pytest.approx(0.0, abs=1e-3)
    # 8 faces are one generator batch: each evaluation takes 3 s, which the training minutes leave out (1 and 3).
    assert [p["eval_seconds"] for p in tracker.points] == [3.0, 3.0]
    assert [p["training_minutes"] for p in tracker.points] == pytest.approx([1.0, 3.0])
    assert tracker.training_minutes() == pytest.approx(3.0)  # now, less both evaluations
    assert all(p["kid_mean"] > 0 and 0.0 <= p["precision"] <= 1.0 for p in tracker.points)
    assert len(plot_fid_curve(tracker.points).axes) == 1


def test_fid_interval_must_land_on_a_logging_step() -> None:
    assert TrainingConfig(log_every_steps=50, fid_every_steps=2000).fid_every_steps == 2000
    with pytest.raises(ValueError, match="multiple of log_every_steps"):
        TrainingConfig(log_every_steps=50, fid_every_steps=120)
