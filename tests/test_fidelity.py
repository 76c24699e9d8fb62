"""Offline FID/KID/precision-recall on real UTKFace faces: converted weights, one feature pass, metric values
checked against independent computations, the cached real-feature record and input validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from facegen.metrics.features import (
    INCEPTION_POOL3,
    RealFeatures,
    RealFeaturesMismatch,
    dataset_hash,
    file_sha256,
    inception_features,
    unique_images,
)
from facegen.metrics.fidelity import compute_fidelity, fidelity_from_features
from facegen.metrics.inception_weights import (
    convert_fid_helper_weights,
    ensure_inception_weights,
    find_fid_helper_weights,
)

N_PER_SET = 32
#: Converted weights must reproduce the TorchScript features (observed max abs diff ~1e-6, features up to ~10).
FEATURE_ATOL = 1e-4
#: torch-fidelity's FID (eigenvalues of S1·S2) vs scipy's sqrtm of S1·S2, both float64 from the same features.
#: Observed ~2e-9 on these faces; the residue comes from the ~2000 numerically-zero eigenvalues of the rank-31
#: product, which the two methods square-root differently. 1e-5 leaves room for BLAS differences.
FID_RTOL = 1e-5
#: torch-fidelity computes the KID kernels in float32 (as its features are) while the reference below is float64;
#: MMD² is a difference of kernel means ~1.5 that cancel down to ~0.02, so float32 rounding (~1e-7) is amplified
#: to an observed ~1.5e-5 relative error. 1e-4 bounds that without admitting a wrong kernel or estimator.
KID_RTOL = 1e-4
#: The same images extracted in different batch compositions give features equal to ~1e-6 (BLAS blocking).
WRAPPER_RTOL = 1e-4
METRIC_KEYS = {"fid", "kid_mean", "kid_std", "precision", "recall", "f_score"}


@pytest.fixture(scope="module")
def weights(facegen_home: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGEN_HOME", str(facegen_home))
        return ensure_inception_weights()


@pytest.fixture(scope="module")
def faces(real_faces_32: np.ndarray) -> dict[str, np.ndarray]:
    """Two disjoint sets of real faces (interleaved picks) and one of uniform noise, N_PER_SET each."""
    sample = real_faces_32[: 2 * N_PER_SET]
    noise = np.random.default_rng(0).integers(0, 256, size=sample[0::2].shape, dtype=np.uint8)
    return {"a": sample[0::2], "b": sample[1::2], "noise": noise}


@pytest.fixture(scope="module")
def features(faces: dict[str, np.ndarray], weights: Path) -> dict[str, np.ndarray]:
    """Every set through the network once; the tests below share these."""
    return {name: inception_features(images, weights_path=weights) for name, images in faces.items()}


@pytest.fixture(scope="module")
def real_vs_real(features: dict[str, np.ndarray]) -> dict[str, float]:
    return fidelity_from_features(features["a"], features["b"])


def test_conversion_is_idempotent(weights: Path) -> None:
    before = weights.stat().st_mtime_ns
    assert convert_fid_helper_weights(weights) == weights
    assert weights.stat().st_mtime_ns == before


@pytest.mark.filterwarnings("ignore:.*jit.load.*is deprecated:FutureWarning")
def test_converted_features_match_torchscript(faces, features) -> None:
    images = torch.from_numpy(faces["a"][:8])
    scripted = torch.jit.load(str(find_fid_helper_weights()), map_location="cpu").eval()
    # fid_helper's net takes N×3×299×299 floats in the TF range [-1, 0.9921875] = (u8 - 128) / 128 and does no
    # resizing, so feed it the same TF-1.x bilinear resize that torch-fidelity applies internally.
    resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
    with torch.no_grad():
        expected = scripted((resized - 128) / 128).numpy()
    actual = features["a"][:8]
    assert actual.shape == expected.shape == (8, 2048)
    assert actual.dtype == np.float32
    assert np.abs(actual - expected).max() < FEATURE_ATOL


def test_fid_matches_sqrtm(features, real_vs_real: dict[str, float]) -> None:
    a, b = features["a"].astype(np.float64), features["b"].astype(np.float64)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert sigma_a.shape == (2048, 2048)
    diff = a.mean(0) - b.mean(0)
    tr_covmean = np.trace(scipy.linalg.sqrtm(sigma_a @ sigma_b)).real
    expected = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * tr_covmean
    assert real_vs_real["fid"] == pytest.approx(expected, rel=FID_RTOL)


def test_kid_matches_direct_unbiased_mmd(features) -> None:
    x, y = features["a"].astype(np.float64), features["b"].astype(np.float64)
    n, d = x.shape

    def kernel(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (p @ q.T / d + 1) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    expected = off_diagonal - 2 * k_xy.mean()
    # One subset of the whole set is a permutation of it, and the unbiased MMD² is permutation invariant.
    metrics = fidelity_from_features(features["a"], features["b"], kid_subset_size=n, kid_subsets=1)
    assert metrics["kid_mean"] == pytest.approx(expected, rel=KID_RTOL)
    assert metrics["kid_std"] == 0


def test_identical_sets_have_full_precision_and_recall(features) -> None:
    metrics = fidelity_from_features(features["a"], features["a"])
    assert metrics["precision"] == metrics["recall"] == metrics["f_score"] == 1.0
    assert metrics["fid"] == pytest.approx(0, abs=1e-3)


def test_noise_is_far_from_real_faces(features, real_vs_real: dict[str, float]) -> None:
    real_vs_noise = fidelity_from_features(features["noise"], features["a"])
    assert set(real_vs_noise) == METRIC_KEYS
    # Observed at 32 px, 32 vs 32 images: real/real FID ≈ 130, precision ≈ 0.6; noise/real FID ≈ 440, precision 0.
    assert real_vs_noise["precision"] <= 0.05
    assert real_vs_noise["precision"] < real_vs_real["precision"]
    assert real_vs_noise["fid"] > 2 * real_vs_real["fid"]
    assert real_vs_noise["kid_mean"] > max(0, real_vs_real["kid_mean"])


def test_compute_fidelity_is_extract_then_score(faces, features, weights: Path) -> None:
    wrapped = compute_fidelity(faces["a"][:8], faces["b"][:8], weights_path=weights, batch_size=4)
    direct = fidelity_from_features(features["a"][:8], features["b"][:8])
    assert set(wrapped) == METRIC_KEYS
    assert wrapped == pytest.approx(direct, rel=WRAPPER_RTOL)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_metrics_raise() -> None:
    huge = np.random.default_rng(0).random((8, 16)) * 1e200  # finite features whose covariance overflows
    with pytest.raises(RuntimeError, match="non-finite"):
        fidelity_from_features(huge, huge[::-1].copy())


@pytest.mark.parametrize(
    ("generated", "real", "message"),
    [
        (np.zeros((4, 8), dtype=np.float32), np.zeros((4, 9), dtype=np.float32), "widths differ"),
        (np.full((4, 8), np.nan, dtype=np.float32), np.zeros((4, 8), dtype=np.float32), "non-finite"),
        (np.zeros((3, 8), dtype=np.float32), np.zeros((4, 8), dtype=np.float32), "at least 4"),
        (np.zeros((4, 8), dtype=np.float64), np.zeros((4, 8), dtype=np.float32), "dtypes differ"),
    ],
)
def test_bad_features_raise(generated: np.ndarray, real: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fidelity_from_features(generated, real)


@pytest.mark.parametrize(
    ("generated", "message"),
    [
        (np.zeros((4, 3, 32, 32), dtype=np.float32), "uint8"),
        (np.zeros((1, 3, 32, 32), dtype=np.uint8), "at least"),
        (np.zeros((4, 32, 32, 3), dtype=np.uint8), "N×3×H×W"),
    ],
)
def test_bad_images_raise(generated: np.ndarray, message: str, weights: Path) -> None:
    real = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    with pytest.raises(ValueError, match=message):
        compute_fidelity(generated, real, weights_path=weights)


def test_missing_weights_raise(tmp_path: Path) -> None:
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    with pytest.raises(FileNotFoundError, match="python -m facegen.metrics.inception_weights"):
        compute_fidelity(images, images, weights_path=tmp_path / "absent.pth")


def test_unique_images_keeps_first_occurrences_in_order(faces) -> None:
    a = faces["a"]
    oversampled = np.concatenate([a[2:3], a[0:1], a[2:3], a[1:2], a[0:1]])
    assert np.array_equal(unique_images(oversampled), np.concatenate([a[2:3], a[0:1], a[1:2]]))
    assert dataset_hash(a[:3]) == dataset_hash(a[:3].copy())
    assert dataset_hash(a[:3]) != dataset_hash(a[[1, 0, 2]])
    assert dataset_hash(a[:3]) != dataset_hash(a[:3].reshape(3, 3, 16, 64))


def test_real_features_round_trip_and_mismatch(faces, weights: Path, tmp_path: Path) -> None:
    a = faces["a"]
    oversampled = np.concatenate([a[:4], a[:4], a[4:6]])
    record = RealFeatures.from_images(oversampled, weights_path=weights)
    assert record.count == 6  # each distinct face once
    assert record.identity == {
        "dataset_hash": dataset_hash(a[:6]),
        "resolution": 32,
        "extractor": INCEPTION_POOL3,
        "weights_sha256": file_sha256(weights),
        "count": 6,
    }
    path = record.save(tmp_path / "real.npz")
    loaded = RealFeatures.load(
        path,
        dataset_hash=dataset_hash(a[:6]),
        resolution=32,
        extractor=INCEPTION_POOL3,
        weights_sha256=file_sha256(weights),
    )
    assert loaded.identity == record.identity
    assert np.array_equal(loaded.features, record.features)
    with pytest.raises(RealFeaturesMismatch, match="resolution: expected 64, found 32"):
        RealFeatures.load(path, resolution=64)
    with pytest.raises(RealFeaturesMismatch, match="extractor"):
        RealFeatures.load(path, extractor="dinov2-vit-s-14/dinov2")


def test_loading_a_foreign_npz_raises(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, features=np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="not a RealFeatures record"):
        RealFeatures.load(path)
