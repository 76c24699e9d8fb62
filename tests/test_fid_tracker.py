"""FID during training: the tracker scores the generator it is given against cached real features, records FID
against training minutes with its own evaluation time left out, and the config only allows intervals that land on
logging steps."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from facegen.metrics.features import RealFeatures
from facegen.metrics.fidelity import frechet_distance
from facegen.models.registry import build_generator
from facegen.train.config import TrainingConfig
from facegen.train.fid_tracker import TrainingFID, plot_fid_curve

WEIGHTS = "weights/pt_inception-2015-12-05-fid.pth"


@pytest.fixture(scope="module")
def real(real_faces_32: np.ndarray, facegen_home: Path) -> RealFeatures:
    return RealFeatures.from_images(real_faces_32[:24], weights_path=facegen_home / WEIGHTS)


def test_tracker_records_fid_against_training_minutes(real: RealFeatures, facegen_home: Path) -> None:
    generator = build_generator("dcgan", {"resolution": 32, "latent_dim": 16, "width": 8})
    tracker = TrainingFID(real, facegen_home / WEIGHTS, num_samples=8, seed=3)
    first = tracker(generator)
    time.sleep(0.3)  # "training" between evaluations
    second = tracker(generator)
    assert first == pytest.approx(second)  # same latents, same weights: the curve moves only when the model does
    assert first > 100 and frechet_distance(real.features, real.features) == pytest.approx(0.0, abs=1e-3)
    (a, b) = tracker.points
    assert a["training_minutes"] < 0.02  # nothing trained before the first evaluation
    trained = (b["training_minutes"] - a["training_minutes"]) * 60
    assert 0.3 <= trained < 0.3 + a["eval_seconds"] / 2, (trained, a["eval_seconds"])  # the evaluation is excluded
    assert len(plot_fid_curve(tracker.points).axes) == 1


def test_fid_interval_must_land_on_a_logging_step() -> None:
    assert TrainingConfig(log_every_steps=50, fid_every_steps=2000).fid_every_steps == 2000
    with pytest.raises(ValueError, match="multiple of log_every_steps"):
        TrainingConfig(log_every_steps=50, fid_every_steps=120)
