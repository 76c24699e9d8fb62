"""Inception Score: the offline MobileNetV2 route on real faces, torch-fidelity's own route chosen only when its
weights are present, and classifiers that cannot give a meaningful score refused before scoring."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
import torchvision
from torch.utils.data import Dataset

from facegen.attributes_model.network import imagenet_weights_path
from facegen.metrics.features import INCEPTION
from facegen.metrics.inception_score import (
    INCEPTION_TAG,
    MOBILENET,
    MOBILENET_TAG,
    ISNetwork,
    inception_score,
    select_is_network,
    torch_fidelity_inception_path,
)
from facegen.metrics.inception_weights import ensure_inception_weights

SPLITS = 4
N_FACES = 64
#: Our extraction loop vs torch-fidelity's DataLoader loop: same batches, same network, same float32 logits.
SAME_PIPELINE_RTOL = 1e-6


class _Images(Dataset):
    """uint8 3×H×W tensors, the input torch-fidelity's calculate_metrics takes."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self._images[index])


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME: torch-fidelity's Inception weights are absent unless a test puts a file there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture(scope="module")
def faces(real_faces_32: np.ndarray) -> np.ndarray:
    return real_faces_32[:N_FACES]


@pytest.fixture(scope="module")
def mobilenet_score(faces: np.ndarray) -> dict[str, float | str]:
    network = ISNetwork(MOBILENET, imagenet_weights_path(), MOBILENET_TAG)
    return inception_score(faces, splits=SPLITS, device="cpu", network=network)


def test_fallback_is_mobilenet_without_torch_fidelity_weights(torch_home: Path) -> None:
    assert not torch_fidelity_inception_path().exists()
    assert select_is_network() == ISNetwork(MOBILENET, imagenet_weights_path(), MOBILENET_TAG)


def test_standard_route_selected_when_its_weights_are_present(torch_home: Path) -> None:
    path = torch_fidelity_inception_path()
    assert path.parent == torch_home / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"placeholder: selection only, never loaded")
    assert select_is_network() == ISNetwork(INCEPTION, path, INCEPTION_TAG)


def test_mobilenet_is_on_real_faces(mobilenet_score: dict[str, float | str]) -> None:
    assert mobilenet_score["is_network"] == MOBILENET_TAG
    assert "not comparable" in MOBILENET_TAG
    assert math.isfinite(mobilenet_score["is_mean"]) and math.isfinite(mobilenet_score["is_std"])
    # Observed 1.748 ± 0.220 on CPU: ImageNet has no "face" class, so faces spread over a few classes at most. The pin
    # catches a changed resize or normalisation, which the comparison with calculate_metrics below would share;
    # 0.01 leaves room for BLAS rounding. The closed form on known posteriors: tests/test_metrics_registry.py.
    assert mobilenet_score["is_mean"] == pytest.approx(1.748, abs=0.01)
    assert mobilenet_score["is_std"] == pytest.approx(0.220, abs=0.01)


def test_mobilenet_is_equals_torch_fidelity_calculate_metrics(faces, mobilenet_score) -> None:
    reference = torch_fidelity.calculate_metrics(
        input1=_Images(faces),
        isc=True,
        isc_splits=SPLITS,
        feature_extractor=MOBILENET,
        feature_extractor_weights_path=str(imagenet_weights_path()),
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    assert mobilenet_score["is_mean"] == pytest.approx(reference["inception_score_mean"], rel=SAME_PIPELINE_RTOL)
    assert mobilenet_score["is_std"] == pytest.approx(reference["inception_score_std"], rel=SAME_PIPELINE_RTOL)


def test_all_zero_classifier_is_refused(faces, tmp_path: Path) -> None:
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    state["classifier.1.weight"].zero_()
    torch.save(state, tmp_path / "zeroed.pth")
    with pytest.raises(ValueError, match="all zero"):
        inception_score(faces[:8], splits=2, network=ISNetwork(MOBILENET, tmp_path / "zeroed.pth", "zeroed"))


def test_nan_classifier_of_converted_fid_weights_is_refused(
    faces, facegen_home: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copying the offline FID weights where torch-fidelity looks for its own must not yield an IS."""
    monkeypatch.setenv("FACEGEN_HOME", str(facegen_home))
    path = torch_fidelity_inception_path()
    path.parent.mkdir(parents=True)
    path.symlink_to(ensure_inception_weights())
    assert select_is_network().tag == INCEPTION_TAG
    with pytest.raises(ValueError, match="not finite"):
        inception_score(faces[:8], splits=2)


@pytest.mark.parametrize(("count", "splits", "message"), [(4, 10, "at least 10"), (8, 0, "splits must be positive")])
def test_bad_arguments_raise(faces, count: int, splits: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inception_score(faces[:count], splits=splits)


def test_a_weights_file_that_does_not_hash_to_its_name_is_refused(tmp_path: Path) -> None:
    forged = tmp_path / "mobilenet_v2-b0353104.pth"  # torchvision's name, other contents
    state = torchvision.models.mobilenet_v2().state_dict()
    torch.save(state, forged)
    with pytest.raises(ValueError, match="does not hash to the prefix"):
        inception_score(np.zeros((4, 3, 32, 32), np.uint8), splits=2, network=ISNetwork(MOBILENET, forged, "forged"))
