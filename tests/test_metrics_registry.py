"""The metrics registry: named metrics answer uniform results whose values are known in advance on sets built for
it (identical, independent, shifted), the Inception Score equals its closed form on a classifier whose posteriors
are known, and a metric that cannot be computed raises instead of answering a placeholder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import (
    FEATURE_EXTRACTORS_REGISTRY,
    register_feature_extractor,
)

from facegen.metrics.inception_score import IS_LAYER, ISNetwork, inception_score
from facegen.metrics.registry import (
    MetricInputs,
    MetricResult,
    calc_metric,
    metric_names,
    register_metric,
)
from facegen.models.registry import build_generator

N, D = 200, 16
FIDELITY = {"kid_subset_size": 100, "kid_subsets": 50, "prc_neighborhood": 3}
#: FID of a set against itself shifted by a constant vector is |shift|² (equal covariances cancel the trace term);
#: float32 features and float64 statistics leave ~1e-7 relative error.
FID_RTOL = 1e-5
#: Two independent draws of N(0, I) in 16 dimensions: the unbiased KID has expectation 0; its subset std is ~0.02
#: (observed mean 0.008), so 0.05 admits chance but not a biased estimator (a shift of 2 gives ~120).
KID_NULL_ATOL = 0.05


@pytest.fixture(scope="module")
def gaussians() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(N, D)).astype(np.float32)
    return {"real": real, "independent": rng.normal(size=(N, D)).astype(np.float32), "shifted": real + 2}


def _fidelity(generated: np.ndarray, real: np.ndarray) -> MetricResult:
    inputs = MetricInputs(generated_features=generated, real_features=real, device="cpu")
    return calc_metric("fidelity", inputs, **FIDELITY)


def test_registered_metrics() -> None:
    assert metric_names() == ["fid", "fid_inf", "fidelity", "inception_score", "latency", "memorisation"]


def test_fid_of_a_shifted_copy_is_the_squared_shift(gaussians) -> None:
    shift = np.linspace(0, 1, D, dtype=np.float32)
    inputs = MetricInputs(generated_features=gaussians["real"] + shift, real_features=gaussians["real"])
    result = calc_metric("fid", inputs)
    assert result.name == "fid" and set(result.values) == {"fid"}
    assert (result.num_generated, result.num_real) == (N, N)
    assert result.values["fid"] == pytest.approx(float(shift.astype(np.float64) @ shift), rel=FID_RTOL)
    same = calc_metric("fid", MetricInputs(generated_features=gaussians["real"], real_features=gaussians["real"]))
    assert same.values["fid"] == pytest.approx(0.0, abs=1e-6)


def test_fid_inf_of_a_shifted_copy_reports_its_line_and_points(gaussians) -> None:
    """FID of a subset of the shifted copy is |shift|² plus the subset's own bias; the line through the points is
    what fid_inf and fid_inf_slope report (its known-answer tests: tests/test_fid_infinity.py)."""
    shift = np.linspace(0, 1, D, dtype=np.float32)
    inputs = MetricInputs(generated_features=gaussians["real"] + shift, real_features=gaussians["real"])
    result = calc_metric("fid_inf", inputs)
    assert result.name == "fid_inf" and set(result.values) == {"fid_inf", "fid_inf_slope"}
    assert set(result.arrays) == {"fid_inf_sizes", "fid_inf_fids"}
    assert (result.num_generated, result.num_real) == (N, N)
    sizes, fids = result.arrays["fid_inf_sizes"], result.arrays["fid_inf_fids"]
    assert sizes[-1] == N and fids[-1] == pytest.approx(float(shift.astype(np.float64) @ shift), rel=FID_RTOL)
    slope, intercept = np.polyfit(1.0 / sizes, fids, 1)
    assert (result.values["fid_inf"], result.values["fid_inf_slope"]) == pytest.approx((intercept, slope))


def test_identical_sets_score_perfect_fidelity(gaussians) -> None:
    result = _fidelity(gaussians["real"], gaussians["real"])
    assert result.values["fid"] == pytest.approx(0.0, abs=1e-6)
    assert result.values["precision"] == result.values["recall"] == result.values["f_score"] == 1.0


def test_independent_draws_score_near_zero_kid_and_shifted_sets_far(gaussians) -> None:
    null = _fidelity(gaussians["independent"], gaussians["real"])
    shifted = _fidelity(gaussians["shifted"], gaussians["real"])
    assert null.values["kid_mean"] == pytest.approx(0.0, abs=KID_NULL_ATOL)
    assert shifted.values["kid_mean"] > 100 * KID_NULL_ATOL
    assert shifted.values["fid"] == pytest.approx(4.0 * D, rel=FID_RTOL)  # shift 2 in each of D dimensions
    # A shift of 2σ in 16 dimensions puts the sets ~8σ apart: no sample lies inside the other set's 3-NN balls
    # (one of 200 may by chance); independent draws mostly do (observed 0.78 and 0.76).
    assert shifted.values["precision"] <= 1 / N and shifted.values["recall"] <= 1 / N
    assert null.values["precision"] > 0.5 and null.values["recall"] > 0.5
    p, r = null.values["precision"], null.values["recall"]
    assert null.values["f_score"] == pytest.approx(2 * p * r / (p + r), rel=1e-6)


def test_memorisation_flags_copies_and_returns_their_rows(gaussians) -> None:
    real = gaussians["real"]
    copies = real[:50] + np.float32(1e-3)
    generated = np.concatenate([copies, gaussians["independent"][:50]])
    inputs = MetricInputs(generated_features=generated, real_features=real)
    result = calc_metric("memorisation", inputs, quantile=0.01)
    assert set(result.values) == {"near_copy_share", "nn_distance_p50", "near_copy_threshold"}
    assert (result.arrays["nn_distance"][:50] <= result.values["near_copy_threshold"]).all()
    # Independent draws fall under a 1 % threshold by chance; its estimate from 200 points is rough (observed 4 of 50).
    assert 0.5 <= result.values["near_copy_share"] <= 0.6
    assert np.array_equal(result.arrays["nn_index"][:50], np.arange(50))
    assert (result.num_generated, result.num_real) == (100, N)


def test_latency_times_the_requested_faces() -> None:
    generator = build_generator("dcgan", {"resolution": 16, "latent_dim": 16, "width": 8})
    result = calc_metric("latency", MetricInputs(generator=generator, device="cpu"), repeats=3)
    assert set(result.values) == {"latency_p50_ms", "latency_p95_ms"}
    assert result.values["latency_p50_ms"] <= result.values["latency_p95_ms"]
    assert result.tags["latency_device"].startswith("cpu") and result.num_generated == 3


@pytest.mark.parametrize(
    ("name", "inputs", "options", "error", "message"),
    [
        (
            "fidelity",
            MetricInputs(generated_features=np.zeros((4, 2), np.float32)),
            FIDELITY,
            ValueError,
            r"'fidelity' cannot be computed without inputs \['real_features'\]",
        ),
        ("latency", MetricInputs(), {"repeats": 3}, ValueError, r"without inputs \['generator'\]"),
        (
            "memorisation",
            MetricInputs(generated_features=np.zeros((4, 2)), real_features=np.zeros((4, 2))),
            {"quantil": 0.01},
            TypeError,
            "'memorisation'.*quantil",
        ),
        ("fdi", MetricInputs(), {}, ValueError, r"unknown metric 'fdi'; registered: \['fid', "),
    ],
)
def test_metrics_that_cannot_be_computed_raise(name, inputs, options, error, message) -> None:
    with pytest.raises(error, match=message):
        calc_metric(name, inputs, **options)


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("fid", needs=())(lambda inputs: None)
    with pytest.raises(ValueError, match="unknown inputs"):
        register_metric("images_of_the_moon", needs=("moon",))


# --- Inception Score on a classifier with known posteriors --------------------------------------------------------

TOY = "toy-colour-classifier"
#: The toy's logit for the image's colour (0 for the other two): posterior softmax(CONFIDENCE, 0, 0).
CONFIDENCE = 4.0


class _ColourClassifier(FeatureExtractorBase):
    """Three classes, red/green/blue: logits = CONFIDENCE × (the image's mean colour in [0, 1])."""

    def __init__(self, name: str, features_list: list[str], **kwargs) -> None:
        super().__init__(name, features_list)
        self.fc = nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(CONFIDENCE * torch.eye(3))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x.float().mean(dim=(2, 3)) / 255 @ self.fc.weight.T,)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return (IS_LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return IS_LAYER


if TOY not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(TOY, _ColourClassifier)
TOY_NETWORK = ISNetwork(TOY, Path("weights-in-code"), "toy")


def _pure_colours(per_colour: list[int]) -> np.ndarray:
    images = [np.zeros((count, 3, 8, 8), np.uint8) for count in per_colour]
    for channel, block in enumerate(images):
        block[:, channel] = 255
    return np.concatenate(images)


def test_inception_score_equals_its_closed_form_on_known_posteriors() -> None:
    # Balanced classes: p(y) uniform over K = 3, so IS = exp(E KL(p(y|x) ‖ p(y))) = K · exp(−H(p(y|x))).
    posterior = torch.softmax(torch.tensor([CONFIDENCE, 0.0, 0.0], dtype=torch.float64), dim=0)
    entropy = float(-(posterior * posterior.log()).sum())
    score = inception_score(_pure_colours([20, 20, 20]), splits=1, device="cpu", network=TOY_NETWORK)
    assert score["is_mean"] == pytest.approx(3 * math.exp(-entropy), rel=1e-6)
    assert score["is_std"] == 0.0  # one split
    # One class only: every posterior equals the marginal, KL = 0 and IS is exactly 1.
    collapsed = inception_score(_pure_colours([30]), splits=3, device="cpu", network=TOY_NETWORK)
    assert collapsed["is_mean"] == pytest.approx(1.0, abs=1e-12)
    assert collapsed["is_std"] == pytest.approx(0.0, abs=1e-12)
