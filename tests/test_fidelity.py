"""Offline FID/KID on real UTKFace faces: converted weights, metric values and input validation."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from facegen.metrics.fidelity import compute_fidelity
from facegen.metrics.inception_weights import convert_fid_helper_weights, find_fid_helper_weights

UTKFACE_ZIP = (Path(__file__).resolve().parents[1] / "../shared/data/utkface/UTKFace.zip").resolve()
SIZE = 32
N_PER_SET = 32
#: Converted weights must reproduce the TorchScript features (observed max abs diff ~1e-6, features up to ~10).
FEATURE_ATOL = 1e-4
#: compute_fidelity vs an independent FID from the same features (eigvals of a 2048² product vs sqrtm of a Gram).
FID_RTOL = 1e-3

pytestmark = pytest.mark.skipif(not UTKFACE_ZIP.is_file(), reason=f"shared faces not found at {UTKFACE_ZIP}")


def _load_faces(count: int, stride: int = 97) -> np.ndarray:
    """``count`` faces spread over the (age-sorted) file names, as uint8 N×3×SIZE×SIZE."""
    with zipfile.ZipFile(UTKFACE_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("UTKFace/") and n.endswith(".jpg"))
        faces = []
        for name in names[::stride][:count]:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                small = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            faces.append(np.asarray(small, dtype=np.uint8).transpose(2, 0, 1))
    return np.stack(faces)


def _features(extractor: FeatureExtractorInceptionV3, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return extractor(torch.from_numpy(images))[0].double().numpy()


def _fid_numpy(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID with tr sqrt(S1 S2) = tr sqrtm(M Mᵀ), M = X1 X2ᵀ / sqrt((n1-1)(n2-1)): same value, small matrix."""
    x1, x2 = feats1 - feats1.mean(0), feats2 - feats2.mean(0)
    m = x1 @ x2.T / np.sqrt((len(x1) - 1) * (len(x2) - 1))
    tr_covmean = np.trace(scipy.linalg.sqrtm(m @ m.T)).real
    diff = feats1.mean(0) - feats2.mean(0)
    cov1, cov2 = np.cov(feats1, rowvar=False), np.cov(feats2, rowvar=False)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_fid_helper_weights(tmp_path_factory.mktemp("inception") / "inception.pth")


@pytest.fixture(scope="module")
def extractor(weights: Path) -> FeatureExtractorInceptionV3:
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of real faces (interleaved picks of one spread-out sample)."""
    both = _load_faces(2 * N_PER_SET)
    return both[0::2], both[1::2]


@pytest.fixture(scope="module")
def real_vs_real(faces: tuple[np.ndarray, np.ndarray], weights: Path) -> dict[str, float]:
    return compute_fidelity(faces[0], faces[1], weights_path=weights)


def test_conversion_is_idempotent(weights: Path) -> None:
    before = weights.stat().st_mtime_ns
    assert convert_fid_helper_weights(weights) == weights
    assert weights.stat().st_mtime_ns == before


@pytest.mark.filterwarnings("ignore:.*jit.load.*is deprecated:FutureWarning")
def test_converted_features_match_torchscript(extractor: FeatureExtractorInceptionV3, faces) -> None:
    images = torch.from_numpy(faces[0][:8])
    scripted = torch.jit.load(str(find_fid_helper_weights()), map_location="cpu").eval()
    # fid_helper's net takes N×3×299×299 floats in the TF range [-1, 0.9921875] = (u8 - 128) / 128 and does no
    # resizing, so feed it the same TF-1.x bilinear resize that torch-fidelity applies internally.
    resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
    with torch.no_grad():
        expected = scripted((resized - 128) / 128)
        actual = extractor(images)[0]
    assert actual.shape == expected.shape == (8, 2048)
    assert (actual - expected).abs().max().item() < FEATURE_ATOL


def test_fid_matches_independent_computation(extractor, faces, real_vs_real: dict[str, float]) -> None:
    expected = _fid_numpy(_features(extractor, faces[0]), _features(extractor, faces[1]))
    assert real_vs_real["fid"] == pytest.approx(expected, rel=FID_RTOL)


def test_real_faces_are_closer_than_noise(faces, weights: Path, real_vs_real: dict[str, float]) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=faces[0].shape, dtype=np.uint8)
    real_vs_noise = compute_fidelity(noise, faces[0], weights_path=weights)
    assert set(real_vs_noise) == {"fid", "kid_mean", "kid_std"}
    # Observed at 32 px, 32 vs 32 images: real/real FID ≈ 122, noise/real FID ≈ 444, noise KID ≈ 0.57.
    assert real_vs_noise["fid"] > 2 * real_vs_real["fid"]
    assert real_vs_noise["kid_mean"] > 0
    assert real_vs_noise["kid_mean"] > real_vs_real["kid_mean"]


@pytest.mark.parametrize(
    ("generated", "message"),
    [
        (np.zeros((4, 3, SIZE, SIZE), dtype=np.float32), "uint8"),
        (np.zeros((1, 3, SIZE, SIZE), dtype=np.uint8), "at least 2"),
        (np.zeros((4, SIZE, SIZE, 3), dtype=np.uint8), "N×3×H×W"),
    ],
)
def test_bad_inputs_raise(generated: np.ndarray, message: str, weights: Path) -> None:
    real = np.zeros((4, 3, SIZE, SIZE), dtype=np.uint8)
    with pytest.raises(ValueError, match=message):
        compute_fidelity(generated, real, weights_path=weights)


def test_missing_weights_raise(tmp_path: Path) -> None:
    images = np.zeros((4, 3, SIZE, SIZE), dtype=np.uint8)
    with pytest.raises(FileNotFoundError, match="python -m facegen.metrics.inception_weights"):
        compute_fidelity(images, images, weights_path=tmp_path / "absent.pth")
