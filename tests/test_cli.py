"""`facegen approve` against a real MLflow server, and the shared default tracking URI."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from facegen.cli import main
from facegen.gates import GateDecision
from facegen.models.bundle import save_generator_bundle
from facegen.models.registry import build_generator
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_registry import apply_gate, register_version
from facegen.registry.tracking import default_tracking_uri
from tests.mlflow_server import use_tracking_uri

MODEL_CONFIG = {"resolution": 16, "width": 8}


@pytest.fixture(scope="module")
def registered(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model with version 1 (gates passed), 2 (gates failed) and 3 (gates passed); returns its name."""
    name = f"facegen-generator-cli-{uuid.uuid4().hex[:8]}"
    bundle = save_generator_bundle(
        tmp_path_factory.mktemp("bundle"), "dcgan", MODEL_CONFIG, build_generator("dcgan", MODEL_CONFIG)
    )
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    with use_tracking_uri(mlflow_server), mlflow.start_run():
        model_uri = log_generator_model(bundle).model_uri
    for passed, fid in ((True, 30.0), (False, 90.0), (True, 25.0)):
        version = register_version(model_uri, name=name, metrics={"fid": fid}, tags={}, client=client)
        apply_gate(client, version, GateDecision(passed, [] if passed else ["fid 90 is above the limit 50"]))
    return name


def approve(uri: str, name: str, *args: str):
    return CliRunner().invoke(main, ["approve", *args, "--model-name", name, "--tracking-uri", uri])


def test_help_lists_approve() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "approve" in result.output


def test_approve_moves_champion_and_refuses_failed_versions(
    mlflow_server: str, mlflow_tracking: MlflowClient, registered: str
) -> None:
    client = mlflow_tracking

    result = approve(mlflow_server, registered, "1", "--by", "alice")
    assert result.exit_code == 0, result.output
    assert "champion moved from no version to version 1" in result.output and "approved by alice" in result.output
    assert client.get_registered_model(registered).aliases["champion"] == "1"

    refused = approve(mlflow_server, registered, "2", "--by", "bob")
    assert refused.exit_code == 1
    assert "refused" in refused.output and "gate_status is 'failed'" in refused.output
    no_reason = approve(mlflow_server, registered, "2", "--by", "bob", "--force")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    missing = approve(mlflow_server, registered, "7", "--by", "bob")
    assert missing.exit_code == 1 and "version 7" in missing.output and "Traceback" not in missing.output
    assert client.get_registered_model(registered).aliases["champion"] == "1"

    result = approve(mlflow_server, registered, "3", "--by", "carol")
    assert result.exit_code == 0 and "from version 1 to version 3" in result.output
    forced = approve(mlflow_server, registered, "2", "--by", "dave", "--force", "--reason", "raters preferred it")
    assert forced.exit_code == 0, forced.output
    assert "from version 3 to version 2" in forced.output and "raters preferred it" in forced.output
    tags = client.get_model_version(registered, "2").tags
    assert tags["approved_by"] == "dave" and tags["approval_forced_reason"] == "raters preferred it"

    # The served alias resolves with plain MLflow.
    faces = mlflow.pyfunc.load_model(f"models:/{registered}@champion").predict(pd.DataFrame({"seed": [0, 1]}))
    assert faces.shape == (2, 16, 16, 3) and faces.dtype == np.uint8


def test_approve_uses_mlflow_tracking_uri_from_the_environment(
    mlflow_server: str, registered: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = CliRunner().invoke(main, ["approve", "1", "--by", "erin", "--model-name", registered])
    assert result.exit_code == 0, result.output
    assert mlflow_server in result.output and "to version 1" in result.output


def test_default_tracking_uri_is_env_or_local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert default_tracking_uri() == "http://127.0.0.1:5999"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("FACEGEN_HOME", str(tmp_path / "home"))
    assert default_tracking_uri() == f"sqlite:///{tmp_path}/home/mlflow/mlflow.db"
    assert (tmp_path / "home" / "mlflow").is_dir()
