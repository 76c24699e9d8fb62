"""evaluate_generator, the library side of the evaluate step: a real (untrained, conditional) generator scored by the
registered metrics, with every MLflow name the pipeline logs present once, the samples each metric saw counted, and
the features it returns being the protocol's own (what the champion comparison reuses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegen.metrics.comparison import protocol_features
from facegen.metrics.evaluation import EVALUATION_METRICS, evaluate_generator
from facegen.metrics.features import RealFeatures
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.models.registry import build_generator

#: The MLflow metric names evaluate logs (read by the gate, the registry and the end-to-end tests).
LOGGED = {
    "fid",
    "fid_inf",
    "fid_inf_slope",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "f_score",
    "is_mean",
    "is_std",
    "near_copy_share",
    "nn_distance_p50",
    "near_copy_threshold",
    "latency_p50_ms",
    "latency_p95_ms",
}
N_GENERATED = 20  # FID∞'s smallest subset, a tenth of them, needs 2


@pytest.fixture(scope="module")
def weights(facegen_home: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGEN_HOME", str(facegen_home))
        return ensure_inception_weights()


def test_evaluation_reports_every_logged_name_from_one_feature_pass(real_faces_32: np.ndarray, weights: Path) -> None:
    real = RealFeatures.from_images(real_faces_32[:24], weights_path=weights)
    generator = build_generator("dcgan", {"resolution": 32, "latent_dim": 16, "width": 8, "conditioning": ["gender"]})
    evaluation = evaluate_generator(
        generator,
        real,
        weights_path=weights,
        targets={"gender": {"female": 0.5, "male": 0.5}},
        num_generated=N_GENERATED,
        seed=7,
        kid_subset_size=8,
        kid_subsets=4,
        prc_neighborhood=3,
        is_splits=2,
        near_copy_quantile=0.05,
        latency_repeats=2,
        device="cpu",
    )
    assert list(evaluation.results) == list(EVALUATION_METRICS)
    assert set(evaluation.values) == LOGGED
    assert set(evaluation.tags) == {"is_network", "latency_device"}
    counts = {name: (result.num_generated, result.num_real) for name, result in evaluation.results.items()}
    assert counts == {
        "fidelity": (20, 24),
        "fid_inf": (20, 24),
        "inception_score": (20, 0),
        "memorisation": (20, 24),
        "latency": (2, 0),
    }
    assert evaluation.protocol.requests == {"gender": {"female": 0.5, "male": 0.5}}
    sample, features = protocol_features(generator, evaluation.protocol, weights_path=weights)
    assert np.array_equal(sample.faces, evaluation.sample.faces)
    assert np.array_equal(sample.labels, evaluation.sample.labels)
    assert np.allclose(features, evaluation.features, rtol=1e-5, atol=1e-5)  # re-scoring draws the same faces
