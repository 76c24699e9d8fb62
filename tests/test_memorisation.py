"""Memorisation on real faces: copies of training faces are flagged, other real faces are not, the grid is laid out
generated-above-nearest-training-face, and repeated training features are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegen.metrics.features import inception_features
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.metrics.memorisation import closest_pairs_grid, memorisation_report

N_TRAIN = 32
#: ±3 grey levels per pixel: a copy as a generator could emit it, visibly the same face.
COPY_NOISE = 3


@pytest.fixture(scope="module")
def images(real_faces_32: np.ndarray) -> dict[str, np.ndarray]:
    """Training faces, noisy copies of them, and other real faces not in the training set."""
    train = real_faces_32[:N_TRAIN]
    noise = np.random.default_rng(0).integers(-COPY_NOISE, COPY_NOISE + 1, size=train.shape)
    copies = np.clip(train.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return {"train": train, "copies": copies, "held_out": real_faces_32[N_TRAIN : 2 * N_TRAIN]}


@pytest.fixture(scope="module")
def features(images: dict[str, np.ndarray], facegen_home: Path) -> dict[str, np.ndarray]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGEN_HOME", str(facegen_home))
        weights = ensure_inception_weights()
    return {name: inception_features(batch, weights_path=weights) for name, batch in images.items()}


@pytest.fixture(scope="module")
def copies_report(features) -> dict:
    return memorisation_report(features["copies"], features["train"])


def test_copies_of_training_faces_are_near_copies(copies_report: dict) -> None:
    # Observed: copies lie 2.1-4.6 from their originals, the threshold is 6.3, training faces' median NN is 11.
    assert copies_report["near_copy_share"] == 1.0
    assert np.array_equal(copies_report["nn_index"], np.arange(N_TRAIN))  # each copy finds its own original
    assert copies_report["nn_distance"].shape == (N_TRAIN,)
    assert copies_report["nn_distance_p95"] <= copies_report["threshold"]


def test_other_real_faces_are_not_near_copies(features) -> None:
    report = memorisation_report(features["held_out"], features["train"])
    # Held-out faces and training faces come from one distribution, so about `quantile` (1 %) of them fall under
    # the threshold by chance; 0.1 allows for 32 samples without admitting copies (observed: 1 of 32).
    assert report["near_copy_share"] <= 0.1
    assert report["nn_distance_p50"] > report["threshold"]
    assert report["threshold"] < report["real_nn_distance_p50"]


def test_closest_pairs_grid_layout(images, copies_report: dict) -> None:
    k, gap, side = 16, 2, 32
    grid = closest_pairs_grid(images["copies"], images["train"], copies_report, k=k, gap=gap)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * side + gap, k * (side + gap) - gap, 3)
    first = int(np.argmin(copies_report["nn_distance"]))
    assert np.array_equal(grid[:side, :side], images["copies"][first].transpose(1, 2, 0))
    nearest = copies_report["nn_index"][first]
    assert np.array_equal(grid[side + gap :, :side], images["train"][nearest].transpose(1, 2, 0))


def test_repeated_training_features_are_refused(features) -> None:
    oversampled = np.concatenate([features["train"], features["train"]])
    with pytest.raises(ValueError, match="unique images"):
        memorisation_report(features["held_out"], oversampled)


def test_grid_rejects_a_report_of_other_images(images, copies_report: dict) -> None:
    with pytest.raises(ValueError, match="report covers"):
        closest_pairs_grid(images["copies"][:4], images["train"], copies_report)
