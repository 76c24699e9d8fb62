"""Comparing a candidate with the champion: one evaluation protocol, re-scoring the champion when the protocol
changed, "not comparable" when it cannot be, and the bootstrap rule for "better" (docs/evaluation.md).

The rule is specified on controlled Gaussian features (known differences, many repetitions are cheap) and on real
Inception features of UTKFace faces degraded by blur at two strengths (a known ordering on the real feature space);
the registry side runs real tiny generators registered on a real MLflow server on 127.0.0.1.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from PIL import Image, ImageFilter
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

from facegen.gates import GateDecision, GateThresholds, decide_gate
from facegen.metrics.comparison import (
    ChampionComparison,
    ComparisonRule,
    EvaluationProtocol,
    NotComparable,
    bootstrap_difference,
    protocol_features,
)
from facegen.metrics.features import RealFeatures, inception_features
from facegen.metrics.fidelity import fidelity_from_features
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.models.bundle import SPEC_FILE, load_generator_bundle, save_generator_bundle
from facegen.models.conditioning import label_vocabulary
from facegen.models.registry import build_generator
from facegen.registry.generator_model import BUNDLE_ARTIFACT, GeneratorPyfunc, log_generator_model
from facegen.registry.model_registry import (
    CHAMPION_COMPARISON_TAG,
    EVAL_PROTOCOL_ID_TAG,
    EVAL_PROTOCOL_TAG,
    LABEL_VOCABULARY_TAG,
    RESCORED_METRICS,
    apply_gate,
    approve_version,
    compare_with_champion,
    evaluation_tags,
    log_generated_features,
    record_comparison,
    register_version,
)
from tests.conftest import read_face

#: Gaussian sets: dimension and size (small enough for many repetitions, large enough for a stable estimate).
DIM, N = 32, 100
#: The point estimate against a direct float64 unbiased MMD² difference (same arithmetic, other order: ~1e-15).
POINT_RTOL = 1e-9
#: ...and against torch-fidelity's KID on one full-size subset (float32 kernels there, see tests/test_fidelity.py).
TORCH_FIDELITY_RTOL = 1e-4
#: No-difference repetitions; "better" may be called in at most this share (nominal α/2 = 2.5 %, binomial noise of
#: 80 trials ~1.7 %; the percentile bootstrap of MMD² is conservative, observed ~0-1.5 %).
CALIBRATION_TRIALS = 80
MAX_FALSE_WIN_RATE = 0.05
#: ...and the interval must contain the true difference 0 at least this often (nominal 95 %).
MIN_COVERAGE = 0.90
#: Replicates in the statistical tests (the rule's minimum is 100; the default 1,000 is for gates).
TEST_BOOTSTRAP = 200

#: Real faces per set for the blur ordering (each goes through CPU Inception, ~4 faces/s).
BLUR_N = 24
LIGHT_BLUR, HEAVY_BLUR = 0.5, 2.0  # Gaussian radius in pixels on 32×32 faces

#: Registry tests: tiny DCGANs at 16×16, this many real and generated faces per protocol.
RESOLUTION = 16
REAL_N = 16
N_GENERATED = 16
KID_SUBSET_SIZE = 8
MODEL_CONFIG = {"resolution": RESOLUTION, "width": 8}
#: Features of the same faces extracted in two processes / batchings agree to ~1e-6 (BLAS blocking).
FEATURE_ATOL = 1e-4
#: Re-scored figures recorded on the champion vs computed here from the same faces.
FIGURE_RTOL = 1e-4


def gaussian(rng: np.random.Generator, shift: float = 0.0, n: int = N) -> np.ndarray:
    return rng.normal(size=(n, DIM)) + shift


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (aᵀb/d + 1)³, written out: the definition the rule's statistic must equal."""
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float(
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) - 2 * k_xy.mean()
    )


# --- the rule on controlled features ----------------------------------------------------------------------------


def test_point_estimate_is_the_kid_difference_on_the_full_sets() -> None:
    """The estimate is KID(candidate) − KID(champion), unbiased MMD² on whole sets, checked two independent ways."""
    rng = np.random.default_rng(0)
    real, candidate, champion = gaussian(rng), gaussian(rng, 0.1), gaussian(rng) * 1.2
    difference = bootstrap_difference(ComparisonRule(bootstrap=TEST_BOOTSTRAP), candidate, champion, real)
    expected = direct_mmd2(candidate, real) - direct_mmd2(champion, real)
    assert difference.estimate == pytest.approx(expected, rel=POINT_RTOL)

    def torch_fidelity_kid(x: np.ndarray) -> float:  # one subset of the whole set = the full-set estimator
        kid = kid_features_to_metric(
            torch.from_numpy(x), torch.from_numpy(real), kid_subsets=1, kid_subset_size=N, verbose=False
        )
        return float(kid[KEY_METRIC_KID_MEAN])

    assert difference.estimate == pytest.approx(
        torch_fidelity_kid(candidate) - torch_fidelity_kid(champion), rel=TORCH_FIDELITY_RTOL
    )
    assert difference.low <= difference.estimate <= difference.high


def test_a_clearly_closer_candidate_is_better_and_a_farther_one_is_not() -> None:
    """Known ordering: the set shifted less from the real distribution has the lower KID, beyond noise."""
    rng = np.random.default_rng(1)
    real, close, far = gaussian(rng), gaussian(rng, 0.05), gaussian(rng, 0.5)
    rule = ComparisonRule(bootstrap=TEST_BOOTSTRAP)
    better = bootstrap_difference(rule, close, far, real)
    assert better.significantly_lower and better.high < 0
    worse = bootstrap_difference(rule, far, close, real)
    assert not worse.significantly_lower and worse.low > 0  # significantly worse, too


def test_without_a_true_difference_better_is_rarely_called() -> None:
    """Calibration: candidate and champion equally far from the real distribution (shifted by +0.3 and −0.3 in every
    coordinate: the same true KID) win at most ~α/2 of the time, and the interval covers the true difference 0 at
    about its nominal rate."""
    rng = np.random.default_rng(2)
    wins = covered = 0
    for trial in range(CALIBRATION_TRIALS):
        difference = bootstrap_difference(
            ComparisonRule(bootstrap=TEST_BOOTSTRAP, seed=trial), gaussian(rng, 0.3), gaussian(rng, -0.3), gaussian(rng)
        )
        wins += difference.significantly_lower
        covered += difference.low <= 0.0 <= difference.high
    assert wins / CALIBRATION_TRIALS <= MAX_FALSE_WIN_RATE
    assert covered / CALIBRATION_TRIALS >= MIN_COVERAGE


def test_the_same_faces_never_beat_themselves_and_resampling_is_seeded() -> None:
    rng = np.random.default_rng(3)
    real, faces = gaussian(rng), gaussian(rng, 0.2)
    rule = ComparisonRule(bootstrap=TEST_BOOTSTRAP, seed=7)
    same = bootstrap_difference(rule, faces, faces.copy(), real)
    assert same.estimate == pytest.approx(0.0, abs=1e-12) and not same.significantly_lower
    assert bootstrap_difference(rule, faces, faces.copy(), real) == same  # a gate decision can be repeated
    assert bootstrap_difference(replace(rule, seed=8), faces, faces.copy(), real) != same


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"metric": "fid"}, "cannot compare metric 'fid'; choose from \\['kid'\\]"),
        ({"confidence": 1.0}, "confidence must lie strictly between 0 and 1"),
        ({"bootstrap": 10}, "at least 100 replicates"),
    ],
)
def test_a_rule_that_cannot_be_applied_is_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ComparisonRule(**settings)


def test_sets_that_cannot_be_compared_raise() -> None:
    rng = np.random.default_rng(4)
    rule = ComparisonRule(bootstrap=TEST_BOOTSTRAP)
    with pytest.raises(ValueError, match="feature widths differ"):
        bootstrap_difference(rule, gaussian(rng), rng.normal(size=(N, DIM + 1)), gaussian(rng))
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_difference(rule, np.full((N, DIM), np.nan), gaussian(rng), gaussian(rng))
    with pytest.raises(ValueError, match="N ≥ 2"):
        bootstrap_difference(rule, gaussian(rng, n=1), gaussian(rng), gaussian(rng))


# --- the rule on real Inception features ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(facegen_home: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGEN_HOME", str(facegen_home))
        return ensure_inception_weights()


def blurred(faces: np.ndarray, radius: float) -> np.ndarray:
    return np.stack(
        [
            np.asarray(Image.fromarray(face.transpose(1, 2, 0)).filter(ImageFilter.GaussianBlur(radius))).transpose(
                2, 0, 1
            )
            for face in faces
        ]
    )


def test_less_blurred_faces_beat_more_blurred_ones_on_inception_features(
    real_faces_32: np.ndarray, weights: Path
) -> None:
    """Real UTKFace faces as the reference; the same other faces lightly vs heavily blurred: light wins, heavy not."""
    real, others = real_faces_32[:BLUR_N], real_faces_32[BLUR_N : 2 * BLUR_N]
    features = {
        name: inception_features(images, weights_path=weights)
        for name, images in {
            "real": real,
            "light": blurred(others, LIGHT_BLUR),
            "heavy": blurred(others, HEAVY_BLUR),
        }.items()
    }
    rule = ComparisonRule(bootstrap=TEST_BOOTSTRAP)
    light_vs_heavy = bootstrap_difference(rule, features["light"], features["heavy"], features["real"])
    assert light_vs_heavy.significantly_lower
    assert not bootstrap_difference(rule, features["heavy"], features["light"], features["real"]).significantly_lower


# --- the protocol -----------------------------------------------------------------------------------------------


def make_protocol(**changes: object) -> EvaluationProtocol:
    fields = dict(
        real_dataset_hash="ab" * 32,
        real_count=REAL_N,
        resolution=RESOLUTION,
        extractor="inception-v3-compat/2048",
        weights_sha256="cd" * 32,
        num_generated=N_GENERATED,
        seed=1_000_003,
        requests={},
        kid_subset_size=10,
        kid_subsets=100,
    )
    return EvaluationProtocol(**{**fields, **changes})


def test_the_protocol_id_names_every_field() -> None:
    protocol = make_protocol()
    assert EvaluationProtocol.from_json(protocol.to_json()) == protocol
    assert EvaluationProtocol(**json.loads(json.dumps(asdict(protocol)))).id == protocol.id  # as a ZenML dict
    changed = {
        "real_dataset_hash": "ef" * 32,
        "real_count": REAL_N + 1,
        "resolution": 32,
        "extractor": "other/1",
        "weights_sha256": "00" * 32,
        "num_generated": N_GENERATED + 1,
        "seed": 0,
        "requests": {"gender": None},
        "kid_subset_size": 11,
        "kid_subsets": 50,
    }
    assert set(changed) == set(asdict(protocol))  # every field is covered below
    ids = {make_protocol(**{name: value}).id for name, value in changed.items()}
    assert len(ids) == len(changed) and protocol.id not in ids


def test_a_generator_is_asked_for_its_own_attributes_only(real_faces_32: np.ndarray) -> None:
    real = RealFeatures(np.zeros((4, 8), dtype=np.float32), "ab" * 32, RESOLUTION, "x/1", "cd" * 32)
    targets = {"gender": {"female": 0.5, "male": 0.5}, "age_bin": {"0-9": 1.0}}
    settings = dict(num_generated=8, seed=3, targets=targets, kid_subset_size=4, kid_subsets=10)
    unconditional = build_generator("dcgan", MODEL_CONFIG)
    assert EvaluationProtocol.for_generator(unconditional, real, **settings).requests == {}
    conditional = build_generator("dcgan", {**MODEL_CONFIG, "conditioning": ["gender", "ethnicity"]})
    protocol = EvaluationProtocol.for_generator(conditional, real, **settings)
    assert protocol.requests == {"gender": {"female": 0.5, "male": 0.5}, "ethnicity": None}  # None: uniform
    assert protocol.unscorable_reason(conditional) is None
    assert protocol.unscorable_reason(unconditional) == (
        "is conditioned on nothing, the protocol requests ['ethnicity', 'gender']"
    )
    big = build_generator("dcgan", {**MODEL_CONFIG, "resolution": 32, "conditioning": ["gender", "ethnicity"]})
    assert protocol.unscorable_reason(big) == "draws 32×32 faces, the protocol scores 16×16"
    with pytest.raises(ValueError, match="not protocol .* reference set"):
        protocol.check_real(replace(real, dataset_hash="ef" * 32))


def test_a_comparison_has_a_difference_or_a_reason_never_both() -> None:
    with pytest.raises(ValueError, match="either a difference or a not-comparable reason"):
        ChampionComparison("3", "p2", "p1", False)


# --- against the registry: real tiny generators on a real MLflow server -----------------------------------------


def unique_name() -> str:
    return f"facegen-comparison-test-{uuid.uuid4().hex[:8]}"


def tiny_bundle(directory: Path, weights_seed: int, **config: object) -> Path:
    torch.manual_seed(weights_seed)
    model_config = {**MODEL_CONFIG, **config}
    return save_generator_bundle(directory, "dcgan", model_config, build_generator("dcgan", model_config))


@pytest.fixture(scope="module")
def setting(utkface_zip: Path, face_members: list[str], weights: Path, tmp_path_factory) -> dict:
    """Real features of REAL_N faces at 16×16, the protocol of an unconditional 16×16 generator, two such
    generators (A: the champion, B: the candidate) and their features under that protocol."""
    with zipfile.ZipFile(utkface_zip) as archive:
        faces = np.stack([read_face(archive, member, RESOLUTION) for member in face_members[-REAL_N:]])
    real = RealFeatures.from_images(faces, weights_path=weights)
    bundles = {name: tiny_bundle(tmp_path_factory.mktemp(name), seed) for name, seed in (("a", 1), ("b", 2))}
    protocol = EvaluationProtocol.for_generator(
        load_generator_bundle(bundles["a"]),
        real,
        targets={},
        num_generated=N_GENERATED,
        seed=1_000_003,
        kid_subset_size=KID_SUBSET_SIZE,
        kid_subsets=100,
    )
    features = {
        name: protocol_features(load_generator_bundle(bundle), protocol, weights_path=weights)[1]
        for name, bundle in bundles.items()
    }
    return {"real": real, "protocol": protocol, "bundles": bundles, "features": features}


def register_champion(
    client: MlflowClient, name: str, bundle: Path, *, protocol: EvaluationProtocol | None, features: np.ndarray | None
) -> ModelVersion:
    """What deploy_gate records for a version (model, features artifact, evaluation tags), passed and approved.

    ``protocol=None`` registers a version as versions were before protocols were recorded.
    """
    with mlflow.start_run() as run:
        info = log_generator_model(bundle)
    tags = {}
    if protocol is not None:
        log_generated_features(client, run.info.run_id, features)
        tags = evaluation_tags(protocol, label_vocabulary(load_generator_bundle(bundle).label_dims))
    version = register_version(info.model_uri, name=name, metrics={"fid": 50.0}, tags=tags, client=client)
    apply_gate(client, version, GateDecision(True, []))
    return approve_version(client, name, version.version, approved_by="test")


def candidate_run() -> str:
    """The comparing run (where a re-scored champion's features are stored)."""
    with mlflow.start_run() as run:
        return run.info.run_id


def compare(
    client: MlflowClient,
    champion: ModelVersion,
    setting: dict,
    weights: Path,
    protocol: EvaluationProtocol | None = None,
    candidate_features: np.ndarray | None = None,
) -> ChampionComparison:
    """Candidate B (under the setting's protocol unless given another one and B's features under it) vs champion."""
    return compare_with_champion(
        client,
        champion,
        setting["features"]["b"] if candidate_features is None else candidate_features,
        protocol or setting["protocol"],
        setting["real"],
        ComparisonRule(bootstrap=TEST_BOOTSTRAP),
        weights_path=weights,
        record_run_id=candidate_run(),
    )


def test_registered_versions_record_their_protocol_and_label_vocabulary(
    mlflow_tracking: MlflowClient, setting: dict, tmp_path: Path
) -> None:
    client, name, protocol = mlflow_tracking, unique_name(), setting["protocol"]
    version = register_champion(
        client, name, setting["bundles"]["a"], protocol=protocol, features=setting["features"]["a"]
    )
    assert EvaluationProtocol.from_json(version.tags[EVAL_PROTOCOL_TAG]) == protocol
    assert version.tags[EVAL_PROTOCOL_ID_TAG] == protocol.id
    assert json.loads(version.tags[LABEL_VOCABULARY_TAG]) == {}
    stored = np.load(client.download_artifacts(version.run_id, "evaluation/generated_features.npy", str(tmp_path)))
    assert np.array_equal(stored, setting["features"]["a"])

    conditional = tiny_bundle(tmp_path / "conditional", 3, conditioning=["gender"])
    tags = evaluation_tags(protocol, label_vocabulary(load_generator_bundle(conditional).label_dims))
    assert json.loads(tags[LABEL_VOCABULARY_TAG]) == {"gender": ["female", "male"]}


def test_same_protocol_compares_with_the_stored_champion_features(
    mlflow_tracking: MlflowClient, setting: dict, weights: Path
) -> None:
    client, name = mlflow_tracking, unique_name()
    champion = register_champion(
        client, name, setting["bundles"]["a"], protocol=setting["protocol"], features=setting["features"]["a"]
    )
    result = compare(client, champion, setting, weights)
    assert result.not_comparable is None and result.rescored is False
    assert result.protocol_id == result.champion_protocol_id == setting["protocol"].id
    expected = bootstrap_difference(
        ComparisonRule(bootstrap=TEST_BOOTSTRAP),
        setting["features"]["b"],
        setting["features"]["a"],
        setting["real"].features,
    )
    assert result.difference == expected
    assert not any(key.startswith("rescored.") for key in client.get_model_version(name, champion.version).tags)


def test_changed_protocol_rescores_the_champion_from_its_registered_model_once(
    mlflow_tracking: MlflowClient, setting: dict, weights: Path, tmp_path: Path
) -> None:
    """The protocol changed (other evaluation seeds): the champion is scored again from the registry, with the new
    protocol's faces, the result is recorded on it, and the next comparison under that protocol reuses it."""
    client, name = mlflow_tracking, unique_name()
    champion = register_champion(
        client, name, setting["bundles"]["a"], protocol=setting["protocol"], features=setting["features"]["a"]
    )
    protocol = replace(setting["protocol"], seed=2_000_000)
    assert protocol.id != setting["protocol"].id
    candidate = protocol_features(load_generator_bundle(setting["bundles"]["b"]), protocol, weights_path=weights)[1]
    result = compare(client, champion, setting, weights, protocol, candidate)
    assert result.rescored is True and result.protocol_id == protocol.id
    assert result.champion_protocol_id == setting["protocol"].id and result.difference is not None

    # The faces a re-score draws are the protocol's: the champion's generator, the new seeds, the same extractor.
    direct = protocol_features(load_generator_bundle(setting["bundles"]["a"]), protocol, weights_path=weights)[1]
    tags = client.get_model_version(name, champion.version).tags
    prefix = f"rescored.{protocol.id}."
    assert EvaluationProtocol.from_json(tags[f"{prefix}eval_protocol"]) == protocol
    run_id, path = tags[f"{prefix}features"].removeprefix("runs:/").split("/", 1)
    stored = np.load(client.download_artifacts(run_id, path, str(tmp_path)))
    assert stored.shape == direct.shape and np.abs(stored - direct).max() < FEATURE_ATOL
    figures = fidelity_from_features(
        direct, setting["real"].features, kid_subset_size=protocol.kid_subset_size, kid_subsets=protocol.kid_subsets
    )
    for metric in RESCORED_METRICS:
        assert float(tags[f"{prefix}{metric}"]) == pytest.approx(figures[metric], rel=FIGURE_RTOL, abs=1e-9)

    champion = client.get_model_version(name, champion.version)
    again = compare(client, champion, setting, weights, protocol, candidate)
    assert again.rescored is False and again.difference == result.difference


def test_a_champion_at_another_resolution_is_not_comparable_and_gets_no_candidate(
    mlflow_tracking: MlflowClient, setting: dict, weights: Path, tmp_path: Path
) -> None:
    """A champion from before protocols were recorded, drawing 32×32 faces: it cannot be re-scored at 16×16."""
    client, name = mlflow_tracking, unique_name()
    champion = register_champion(
        client, name, tiny_bundle(tmp_path / "big", 4, resolution=32), protocol=None, features=None
    )
    result = compare(client, champion, setting, weights)
    assert result.difference is None and not result.better
    why = "draws 32×32 faces, the protocol scores 16×16"
    assert result.summary() == f"not comparable: champion v{champion.version} {why}"

    with mlflow.start_run():
        info = log_generator_model(setting["bundles"]["b"])
    candidate = register_version(info.model_uri, name=name, metrics={"fid": 1.0}, tags={}, client=client)
    decision = decide_gate({"fid_inf": 1.0}, GateThresholds(max_fid_inf=400.0), result)
    assert decision.reasons == [result.summary()]
    apply_gate(client, candidate, decision)
    record_comparison(client, candidate, result)
    tags = client.get_model_version(name, candidate.version).tags
    assert tags["gate_status"] == "failed" and tags["gate_reasons"].startswith("not comparable: ")
    recorded = json.loads(tags[CHAMPION_COMPARISON_TAG])
    assert recorded["not_comparable"] == why and recorded["better"] is False
    assert recorded["champion_version"] == champion.version and recorded["protocol_id"] == setting["protocol"].id
    assert "candidate" not in client.get_model_version(name, candidate.version).aliases


def test_a_champion_conditioned_on_other_attributes_is_not_comparable(
    mlflow_tracking: MlflowClient, setting: dict, weights: Path, tmp_path: Path
) -> None:
    client, name = mlflow_tracking, unique_name()
    bundle = tiny_bundle(tmp_path / "conditional", 5, conditioning=["gender"])
    champion = register_champion(client, name, bundle, protocol=None, features=None)
    result = compare(client, champion, setting, weights)
    assert result.not_comparable == "is conditioned on ['gender'], the protocol requests no labels"


def test_a_champion_whose_model_no_longer_loads_is_not_comparable(
    mlflow_tracking: MlflowClient, setting: dict, weights: Path, tmp_path: Path
) -> None:
    """Its registered weights no longer fit its architecture's spec (as after an incompatible code change)."""
    client, name = mlflow_tracking, unique_name()
    bundle = tiny_bundle(tmp_path / "stale", 6)
    spec = json.loads((bundle / SPEC_FILE).read_text())
    (bundle / SPEC_FILE).write_text(json.dumps({**spec, "model": {**spec["model"], "width": 16}}))
    with mlflow.start_run():  # logged as log_generator_model would, minus its example (which needs a working model)
        info = mlflow.pyfunc.log_model(
            name="generator",
            python_model=GeneratorPyfunc(),
            artifacts={BUNDLE_ARTIFACT: str(bundle)},
            pip_requirements=[],
        )
    version = register_version(info.model_uri, name=name, metrics={"fid": 50.0}, tags={}, client=client)
    apply_gate(client, version, GateDecision(True, []))
    champion = approve_version(client, name, version.version, approved_by="test")
    result = compare(client, champion, setting, weights)
    assert result.not_comparable is not None and result.difference is None
    assert result.not_comparable.startswith("does not load from the registry (RuntimeError: ")
    assert "size mismatch" in result.not_comparable


def test_not_comparable_is_raised_by_scoring_too(setting: dict, weights: Path, tmp_path: Path) -> None:
    big = load_generator_bundle(tiny_bundle(tmp_path / "big", 7, resolution=32))
    with pytest.raises(NotComparable, match="draws 32×32 faces"):
        protocol_features(big, setting["protocol"], weights_path=weights)
