"""Model registry against a real MLflow server: pyfunc round trip, recorded gates, candidate/champion aliases,
approval. The gate rules themselves: tests/test_gates.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from facegen.gates import GateDecision, GateThresholds, decide_gate
from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.registry import build_generator
from facegen.models.sampling import faces_from_seeds
from facegen.registry.champion import champion_generator_images
from facegen.registry.generator_model import BUNDLE_ARTIFACT, GeneratorPyfunc, log_generator_model
from facegen.registry.model_registry import (
    ApprovalRefused,
    apply_gate,
    approve_version,
    champion_version,
    register_version,
)
from tests.mlflow_server import use_tracking_uri
from tests.test_gates import UNDECIDED
from tests.test_seed_to_face import MAX_BATCH_DELTA

MODEL_CONFIG = {"resolution": 16, "width": 8}
CONDITIONAL_CONFIG = {**MODEL_CONFIG, "conditioning": ["gender", "age_bin"]}
RUN_METRICS = {"fid": 30.0, "fid_inf": 27.0, "kid_mean": 0.02, "kid_std": 0.001}


@pytest.fixture(scope="module")
def logged_generator(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny real DCGAN generator logged (with metrics) in one run on the server, shared by this module."""
    bundle_dir = save_generator_bundle(
        tmp_path_factory.mktemp("bundle"), "dcgan", MODEL_CONFIG, build_generator("dcgan", MODEL_CONFIG)
    )
    with use_tracking_uri(mlflow_server), mlflow.start_run() as run:
        mlflow.log_metrics(RUN_METRICS)
        info = log_generator_model(bundle_dir)
    return {"model_uri": info.model_uri, "run_id": run.info.run_id, "bundle_dir": bundle_dir}


@pytest.fixture(scope="module")
def conditional_model(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny DCGAN conditioned on gender and age_bin, logged and loaded back with plain MLflow."""
    torch.manual_seed(5)
    generator = build_generator("dcgan", CONDITIONAL_CONFIG)
    bundle_dir = save_generator_bundle(tmp_path_factory.mktemp("conditional"), "dcgan", CONDITIONAL_CONFIG, generator)
    with use_tracking_uri(mlflow_server), mlflow.start_run():
        info = log_generator_model(bundle_dir)
        model = mlflow.pyfunc.load_model(info.model_uri)
    return {"model": model, "generator": load_generator_bundle(bundle_dir), "model_uri": info.model_uri}


def unique_name() -> str:
    return f"facegen-generator-test-{uuid.uuid4().hex[:8]}"


def register(client: MlflowClient, logged: dict, name: str, metrics: dict[str, float] | None = None) -> ModelVersion:
    return register_version(
        logged["model_uri"], name=name, metrics=metrics or RUN_METRICS, tags={"architecture": "dcgan"}, client=client
    )


# --- pyfunc round trip ---------------------------------------------------------------------------------------


def test_registered_generator_loads_with_plain_mlflow(mlflow_tracking: MlflowClient, logged_generator: dict) -> None:
    name = unique_name()
    version = register(mlflow_tracking, logged_generator, name)
    assert version.version == "1" and version.status == "READY"
    assert version.run_id == logged_generator["run_id"]
    assert version.tags["architecture"] == "dcgan"
    assert float(version.tags["metric.fid"]) == 30.0 and float(version.tags["metric.kid_std"]) == 0.001

    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    faces = model.predict(pd.DataFrame({"seed": [3, 1, 3]}))
    assert isinstance(faces, np.ndarray) and faces.dtype == np.uint8
    assert faces.shape == (3, 16, 16, 3)
    assert np.array_equal(faces[0], faces[2]) and not np.array_equal(faces[0], faces[1])
    # A seed means the same face as the library's sampler gives for it, whatever else is in the request.
    generator = load_generator_bundle(logged_generator["bundle_dir"])
    expected = faces_from_seeds(generator, [3])[0].transpose(1, 2, 0)
    assert np.abs(faces[0].astype(int) - expected.astype(int)).max() <= MAX_BATCH_DELTA
    again = mlflow.pyfunc.load_model(f"models:/{name}/1").predict(pd.DataFrame({"seed": [1]}))
    assert np.array_equal(again[0], faces[1])
    assert model.predict(pd.DataFrame({"seed": np.array([], dtype=np.int64)})).shape == (0, 16, 16, 3)

    # The model is the bundle plus a reference to the class: no pickled network, no facegen in the requirements.
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1"))
    assert (local / "python_model.pkl").stat().st_size < 4096
    assert sorted(p.name for p in (local / "artifacts").rglob("*") if p.is_file()) == ["generator.json", "generator.pt"]
    requirements = (local / "requirements.txt").read_text()
    assert "torch==" in requirements and "facegen" not in requirements

    # The signature: seed required; truncation and every attribute optional (so MLflow passes them to predict).
    inputs = mlflow.models.get_model_info(f"models:/{name}/1").signature.inputs
    assert inputs.required_input_names() == ["seed"]
    assert inputs.optional_input_names() == ["truncation", "gender", "age_bin", "ethnicity"]
    unconditional = r"cannot condition on the input column\(s\) \['gender'\]: it is unconditional"
    with pytest.raises(ValueError, match=unconditional):
        model.predict(pd.DataFrame({"seed": [1], "gender": [None]}))


def test_pyfunc_rows_choose_truncation_and_attributes(conditional_model: dict) -> None:
    model, generator = conditional_model["model"], conditional_model["generator"]
    frame = pd.DataFrame(
        {
            "seed": [4, 4, 4, 5, 4],
            "truncation": [1.0, 0.5, np.nan, 0.5, 1.0],
            "gender": ["female", "female", None, np.nan, "female"],
            "age_bin": ["70+", None, "20-29", None, "70+"],
        }
    )
    faces = model.predict(frame)
    assert faces.shape == (5, 16, 16, 3) and faces.dtype == np.uint8
    # Row by row: (seed, psi, labels) as faces_from_seeds draws them; NaN psi = 1, None / NaN attribute = any.
    rows = [(4, 1.0, [0, 8]), (4, 0.5, [0, -1]), (4, 1.0, [-1, 3]), (5, 0.5, [-1, -1]), (4, 1.0, [0, 8])]
    for face, (seed, psi, labels) in zip(faces, rows, strict=True):
        expected = faces_from_seeds(generator, [seed], labels=labels, truncation_psi=psi)[0].transpose(1, 2, 0)
        assert np.abs(face.astype(int) - expected.astype(int)).max() <= MAX_BATCH_DELTA
    assert np.array_equal(faces[0], faces[4]) and len({face.tobytes() for face in faces[:4]}) == 4
    # Columns left out: untruncated and unspecified.
    unspecified = faces_from_seeds(generator, [4], labels=[-1, -1])[0].transpose(1, 2, 0)
    assert np.array_equal(model.predict(pd.DataFrame({"seed": [4]}))[0], unspecified)
    # MLflow's schema enforcement keeps the declared types: a psi that is not a number never reaches the model.
    with pytest.raises(mlflow.exceptions.MlflowException, match="truncation"):
        model.predict(pd.DataFrame({"seed": [4], "truncation": ["strong"]}))


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"gender": ["robot"]}, r"gender='robot' is not one of \['female', 'male'\]"),
        ({"age_bin": ["70 "]}, r"age_bin='70 ' is not one of \['0-2', .*'70\+'\]"),
        (
            {"ethnicity": ["Asian"]},
            r"cannot condition on the input column\(s\) \['ethnicity'\]: it is conditioned on "
            r"\['gender', 'age_bin'\] only",
        ),
        ({"truncation": [1.5]}, r"'truncation' must lie in \[0, 1\] \(missing = 1.0\), got \[1.5\]"),
    ],
)
def test_pyfunc_refuses_bad_rows_naming_the_allowed_values(conditional_model: dict, columns: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        conditional_model["model"].predict(pd.DataFrame({"seed": [1], **columns}))


def test_champion_faces_follow_per_seed_attributes(
    mlflow_tracking: MlflowClient, conditional_model: dict, tmp_path: Path
) -> None:
    name = unique_name()
    assert champion_generator_images(mlflow_tracking, name, n=2, seed=10) is None
    version = register_version(conditional_model["model_uri"], name=name, metrics={}, tags={}, client=mlflow_tracking)
    mlflow_tracking.set_registered_model_alias(name, "champion", version.version)
    requested = {"gender": ["female", None, "male"], "age_bin": [None, "70+", "0-2"]}
    faces = champion_generator_images(mlflow_tracking, name, n=3, seed=10, attributes=requested)
    labels = np.array([[0, -1], [-1, 8], [1, 0]])
    expected = faces_from_seeds(conditional_model["generator"], [10, 11, 12], labels=labels)
    assert faces.shape == (3, 3, 16, 16) and np.abs(faces.astype(int) - expected.astype(int)).max() <= MAX_BATCH_DELTA

    # A version logged with the seed-only signature of earlier releases would silently draw "any": refused.
    old_bundle = save_generator_bundle(tmp_path, "dcgan", CONDITIONAL_CONFIG, conditional_model["generator"])
    seed_only = ModelSignature(inputs=Schema([ColSpec("long", "seed")]))
    with mlflow.start_run():
        old = mlflow.pyfunc.log_model(
            name="old",
            python_model=GeneratorPyfunc(),
            artifacts={BUNDLE_ARTIFACT: str(old_bundle)},
            signature=seed_only,
            input_example=pd.DataFrame({"seed": [0]}),
            pip_requirements=[],
        )
    old_version = register_version(old.model_uri, name=name, metrics={}, tags={}, client=mlflow_tracking)
    mlflow_tracking.set_registered_model_alias(name, "champion", old_version.version)
    with pytest.raises(ValueError, match=r"champion version 2 takes no \['age_bin', 'gender'\] columns"):
        champion_generator_images(mlflow_tracking, name, n=3, seed=10, attributes=requested)
    assert champion_generator_images(mlflow_tracking, name, n=1, seed=10).shape == (1, 3, 16, 16)


# --- aliases and approval against the server ------------------------------------------------------------------


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return dict(client.get_registered_model(name).aliases)


def test_champion_version_is_none_without_model_or_alias(mlflow_tracking: MlflowClient, logged_generator: dict) -> None:
    name = unique_name()
    assert champion_version(mlflow_tracking, name) is None
    register(mlflow_tracking, logged_generator, name)
    assert champion_version(mlflow_tracking, name) is None


def test_gate_and_approval_flow(mlflow_tracking: MlflowClient, logged_generator: dict) -> None:
    client, name = mlflow_tracking, unique_name()
    thresholds = GateThresholds(max_fid_inf=50.0, max_kid=0.05)

    # v1 passes the gates (no champion yet): candidate, not champion.
    v1 = register(client, logged_generator, name)
    apply_gate(client, v1, decide_gate(RUN_METRICS, thresholds, None))
    assert aliases(client, name) == {"candidate": "1"}
    assert client.get_model_version(name, "1").tags["gate_status"] == "passed"
    assert champion_version(client, name) is None

    # A person approves it: champion moves, with who and when.
    before = datetime.now(UTC).replace(microsecond=0)
    approved = approve_version(client, name, "1", approved_by="alice")
    assert approved.tags["approved_by"] == "alice"
    approved_at = datetime.fromisoformat(approved.tags["approved_at"])
    assert approved_at.utcoffset().total_seconds() == 0 and approved_at >= before
    assert "approval_forced_reason" not in approved.tags
    assert champion_version(client, name).version == "1"

    # v2 is worse than the champion: failed, reasons recorded, neither alias moves.
    v2 = register(client, logged_generator, name, metrics={"fid": 40.0, "fid_inf": 36.0, "kid_mean": 0.01})
    decision = decide_gate({"fid": 40.0, "fid_inf": 36.0, "kid_mean": 0.01}, thresholds, UNDECIDED)
    assert not decision.passed
    apply_gate(client, v2, decision)
    tags = client.get_model_version(name, "2").tags
    assert tags["gate_status"] == "failed" and "not significantly better than champion" in tags["gate_reasons"]
    assert aliases(client, name) == {"candidate": "1", "champion": "1"}

    # Approving the failed version is refused, also when forced without a reason.
    with pytest.raises(ApprovalRefused, match="gate_status is 'failed'"):
        approve_version(client, name, "2", approved_by="bob")
    with pytest.raises(ApprovalRefused, match="reason"):
        approve_version(client, name, "2", approved_by="bob", force=True, reason="  ")
    assert champion_version(client, name).version == "1"
    assert "approved_by" not in client.get_model_version(name, "2").tags

    # A forced approval with a reason goes through and says why.
    reason = "FID set too small; raters prefer v2"
    forced = approve_version(client, name, "2", approved_by="bob", force=True, reason=reason)
    assert forced.tags["approval_forced_reason"] == "FID set too small; raters prefer v2"
    assert aliases(client, name) == {"candidate": "1", "champion": "2"}

    # A never-gated version is refused too; gating v3 moves only candidate; a failed re-gate drops candidate.
    v3 = register(client, logged_generator, name)
    with pytest.raises(ApprovalRefused, match="never gated"):
        approve_version(client, name, "3", approved_by="carol")
    apply_gate(client, v3, GateDecision(True, []))
    assert aliases(client, name) == {"candidate": "3", "champion": "2"}
    apply_gate(client, v3, GateDecision(False, ["re-evaluated: fid regressed"]))
    assert aliases(client, name) == {"champion": "2"}
    assert client.get_model_version(name, "3").tags["gate_reasons"] == "re-evaluated: fid regressed"

    # What is served resolves through the alias with plain MLflow.
    faces = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame({"seed": [7]}))
    assert faces.shape == (1, 16, 16, 3) and faces.dtype == np.uint8


def test_approving_a_missing_version_is_an_mlflow_error(mlflow_tracking: MlflowClient, logged_generator: dict) -> None:
    name = unique_name()
    register(mlflow_tracking, logged_generator, name)
    with pytest.raises(mlflow.exceptions.MlflowException):
        approve_version(mlflow_tracking, name, "9", approved_by="alice")
    with pytest.raises(ValueError, match="approved_by"):
        approve_version(mlflow_tracking, name, "1", approved_by=" ")
