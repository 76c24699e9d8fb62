"""FID∞ (Chong & Forsyth, CVPR 2020) on Gaussian features whose Fréchet distance is known in closed form: FID at N
falls with N towards the truth, the extrapolation lands on it, every subset's FID is torch-fidelity's, and a seed
repeats the fit exactly."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from facegen.metrics.fidelity import FID_INF_MIN_FRACTION, FID_INF_POINTS, fid_infinity, frechet_distance

D = 32
N_GENERATED = 2000
N_REAL = 20_000
#: Generated ~ N(shift, diag(SCALES²)), real ~ N(0, I): the Fréchet distance is |shift|² + Σ (scale − 1)² = 3.1587.
SCALES = np.linspace(0.5, 1.5, D)
SHIFT = np.full(D, 0.1)
TRUE_FID = float(SHIFT @ SHIFT + ((SCALES - 1.0) ** 2).sum())
#: Over 10 seeds FID∞ from 2,000 faces missed the truth by at most 0.134 (sd 0.064; the 20,000 real faces' own
#: estimation noise included); 0.3 is ~4.5 sd.
FID_INF_ATOL = 0.3
#: FID at 200 faces is biased upward by ~1.4 here (observed 0.87-1.76 above the truth over 10 seeds).
MIN_BIAS_AT_200 = 0.5
#: A subset's FID from the factored real covariance vs torch-fidelity's eigenvalues of Σ_g·Σ_r: observed 2e-8
#: relative at FID 866 and 9e-7 at FID 0.72 (rank-deficient products leave square roots of numerically-zero
#: eigenvalues in torch-fidelity's sum).
TORCH_FIDELITY_RTOL = 1e-5


@pytest.fixture(scope="module")
def gaussians() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "real": rng.normal(size=(N_REAL, D)).astype(np.float32),
        "generated": (rng.normal(size=(N_GENERATED, D)) * SCALES + SHIFT).astype(np.float32),
    }


def test_fid_at_n_falls_with_n_and_fid_inf_lands_on_the_closed_form(gaussians) -> None:
    generated, real = gaussians["generated"], gaussians["real"]
    at_n = [frechet_distance(generated[:n], real) for n in (100, 200, 400, 800, 1600)]
    assert all(smaller > larger for smaller, larger in pairwise(at_n)), at_n
    assert at_n[1] - TRUE_FID > MIN_BIAS_AT_200

    fit = fid_infinity(generated, real)
    assert fit.fid_inf == pytest.approx(TRUE_FID, abs=FID_INF_ATOL)
    assert abs(fit.fid_inf - TRUE_FID) < abs(at_n[1] - TRUE_FID) / 3
    assert fit.slope > 0  # the bias shrinks as 1/N
    assert len(fit.sizes) == len(fit.fids) == FID_INF_POINTS
    assert fit.sizes[0] == int(FID_INF_MIN_FRACTION * N_GENERATED) and fit.sizes[-1] == N_GENERATED
    assert (np.diff(fit.sizes) > 0).all()


@pytest.mark.parametrize(
    ("n_generated", "n_real", "width"),
    [(50, 40, 64), (100, 500, 8)],
    ids=["fewer-real-faces-than-dimensions", "more-real-faces-than-dimensions"],
)
def test_the_whole_set_point_is_torch_fidelitys_fid(n_generated: int, n_real: int, width: int) -> None:
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(width, width))
    real = (np.abs(rng.normal(size=(n_real, width))) @ mixing).astype(np.float32)
    generated = (np.abs(rng.normal(size=(n_generated, width)) + 0.5) @ mixing).astype(np.float32)
    fit = fid_infinity(generated, real)
    assert fit.fids[-1] == pytest.approx(frechet_distance(generated, real), rel=TORCH_FIDELITY_RTOL)
    smallest = generated[: fit.sizes[0]]  # any subset: the same arithmetic, another subset of rows
    assert fid_infinity(smallest, real, min_fraction=0.5).fids[-1] == pytest.approx(
        frechet_distance(smallest, real), rel=TORCH_FIDELITY_RTOL
    )


def test_a_seed_repeats_the_fit_exactly(gaussians) -> None:
    generated, real = gaussians["generated"][:400], gaussians["real"][:2000]
    first, again = fid_infinity(generated, real, seed=5), fid_infinity(generated, real, seed=5)
    assert (first.fid_inf, first.slope) == (again.fid_inf, again.slope)
    assert np.array_equal(first.fids, again.fids) and np.array_equal(first.sizes, again.sizes)
    other = fid_infinity(generated, real, seed=6)
    assert other.fid_inf != first.fid_inf  # other subsets
    assert other.fids[-1] == pytest.approx(first.fids[-1], rel=1e-12)  # the whole set is the whole set


@pytest.mark.parametrize(
    ("generated", "real", "options", "message"),
    [
        (np.zeros((19, 4), np.float32), np.eye(4, dtype=np.float32), {}, "needs at least 20 generated features"),
        (np.ones((30, 4), np.float32), np.ones((30, 5), np.float32), {}, "feature widths differ"),
        (np.ones((30, 4), np.float32), np.ones((30, 4), np.float32), {"points": 1}, "at least 2 points"),
        (np.ones((30, 4), np.float32), np.ones((30, 4), np.float32), {"min_fraction": 1.0}, "strictly between"),
        (np.ones((30, 4), np.int64), np.ones((30, 4), np.float32), {}, "N×D float numpy array"),
    ],
    ids=["too-few-for-the-fit", "widths", "points", "fraction", "dtype"],
)
def test_inputs_the_fit_cannot_use_are_refused(generated, real, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        fid_infinity(generated, real, **options)
