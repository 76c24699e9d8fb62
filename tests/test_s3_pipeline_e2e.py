"""The `training` pipeline on a stack whose artifacts live in S3 (moto's S3 server on 127.0.0.1).

Specifies: with ZenML's S3 artifact store (endpoint in ``client_kwargs``, keys in a ZenML secret, none in the run's
environment) and an MLflow server whose ``--artifacts-destination`` is the same S3 server, the manifest (parquet), the
training set's shards with their index, the training checkpoint and the registered model's files are objects in the
bucket, and the registered version loads and samples through the server; a second run reads its input images from an
``s3://`` prefix (keys from the environment).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tests.attribute_fixtures import register_production_attribute_model
from tests.conftest import REPO_ROOT
from tests.mlflow_server import use_tracking_uri
from tests.s3_server import AWS_VARIABLES, CREDENTIALS, aws_env, list_keys, s3_client, start_mlflow_server_on_s3
from tests.test_training_pipeline_e2e import _run

pytestmark = pytest.mark.e2e

MODEL = "facegen-generator"
BIN = Path(sys.executable).parent
N_FACES = 40
ARTIFACT_BUCKET = "facegen-artifacts"  # ZenML under zenml/, MLflow under mlflow/
DATA_BUCKET = "facegen-data"
SECRET = "facegen-s3-test"
SHARD_LISTING = REPO_ROOT / "test-artifacts" / "s3_shard_listing.txt"  # the training set's objects, for the record


@pytest.fixture(scope="module")
def s3(s3_server: str):
    client = s3_client(s3_server)
    for bucket in (ARTIFACT_BUCKET, DATA_BUCKET):
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture(scope="module")
def mlflow_on_s3(tmp_path_factory, s3_server: str, s3) -> str:
    with start_mlflow_server_on_s3(
        tmp_path_factory.mktemp("mlflow-s3"), s3_server, f"s3://{ARTIFACT_BUCKET}/mlflow"
    ) as uri:
        yield uri


@pytest.fixture(scope="module")
def stack_env(
    tmp_path_factory, s3_server: str, mlflow_on_s3: str, facegen_home: Path, tiny_attribute_bundle: Path
) -> dict[str, str]:
    """An isolated ZenML store with an S3-artifact-store stack. The run environment holds no AWS keys: the artifact
    store authenticates with the ZenML secret, MLflow artifacts go through the server."""
    register_production_attribute_model(tiny_attribute_bundle, mlflow_on_s3)
    state = tmp_path_factory.mktemp("zenml_s3_state")
    env = {key: value for key, value in os.environ.items() if key not in AWS_VARIABLES}
    env |= {
        "ZENML_CONFIG_PATH": str(state / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "FACEGEN_HOME": str(facegen_home),
        "MLFLOW_TRACKING_URI": mlflow_on_s3,
        **aws_env(s3_server, state, credentials=False),
    }
    env.pop("AWS_ENDPOINT_URL")  # nothing in the run may reach S3 except through the stack's own settings
    env.pop("MLFLOW_S3_ENDPOINT_URL")
    register = [
        str(BIN / "python"),
        "scripts/zenml_stack.py",
        "--stack",
        "facegen-s3-test",
        "--tracking-uri",
        mlflow_on_s3,
        "--username",
        "facegen",
        "--password",
        "facegen",
        "--artifact-store",
        f"s3://{ARTIFACT_BUCKET}/zenml",
        "--s3-endpoint-url",
        s3_server,
        "--s3-region",
        "us-east-1",
        "--s3-secret",
        SECRET,
        "--no-activate",
    ]
    stack = _run(register, env | CREDENTIALS)  # the keys reach the ZenML secret from the environment, once
    env["ZENML_ACTIVE_STACK_ID"] = stack.stdout.strip().splitlines()[-1]
    return env


@pytest.fixture(scope="module")
def faces(utkface_zip: Path, face_members: list[str]) -> dict[str, bytes]:
    with zipfile.ZipFile(utkface_zip) as archive:
        return {Path(member).name: archive.read(member) for member in face_members[:N_FACES]}


def _config(tmp_path: Path, source: str) -> Path:
    config = yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text())
    config["parameters"]["source"] = source
    config["steps"]["ingest"]["parameters"]["max_images"] = None
    config["steps"]["deploy_gate"]["parameters"]["max_fid_inf"] = 1000.0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


INSPECT = """
import json
from zenml.client import Client
run = Client().get_pipeline(name_id_or_prefix="training").last_run
manifest = run.steps["ingest"].outputs["manifest"][0]
frame = manifest.load()
training_set = run.steps["build_dataset"].outputs["training_set"][0]
print(json.dumps({
    "status": run.status.value,
    "manifest_uri": manifest.uri,
    "training_set_uri": training_set.uri,
    "shards": {info.name: info.bytes for info in training_set.load().shards},
    "checkpoint_uri": run.steps["train_gan"].outputs["training_checkpoint"][0].uri,
    "bundle_uri": run.steps["train_gan"].outputs["generator_bundle"][0].uri,
    "uris": frame["uri"].tolist(),
    "sources": sorted(set(frame["source"])),
    "gate": run.steps["deploy_gate"].outputs["gate_decision"][0].load(),
}))
"""


def _run_pipeline(env: dict[str, str], config: Path) -> dict:
    _run([str(BIN / "zenml"), "pipeline", "run", "pipelines.training.training", "-c", str(config)], env)
    return json.loads(_run([str(BIN / "python"), "-c", INSPECT], env).stdout.strip().splitlines()[-1])


def _keys_under(s3, uri: str) -> list[str]:
    return sorted(_sizes_under(s3, uri))


def _sizes_under(s3, uri: str) -> dict[str, int]:
    """Key (relative to ``uri``) → size in bytes, of every object under ``uri``."""
    parsed = urlparse(uri)
    assert parsed.scheme == "s3", uri
    prefix = parsed.path.lstrip("/").rstrip("/") + "/"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix)
    return {obj["Key"][len(prefix) :]: obj["Size"] for page in pages for obj in page.get("Contents", [])}


def _registered_model_keys(s3, client: MlflowClient, version: str) -> tuple[str, list[str]]:
    """Bucket prefix of the registered version's files, and the keys under it."""
    location = client.get_model_version_download_uri(MODEL, version)
    if location.startswith("mlflow-artifacts:"):  # proxied by the server into --artifacts-destination
        prefix = "mlflow/" + location.removeprefix("mlflow-artifacts:").lstrip("/")
    else:
        parsed = urlparse(location)
        assert (parsed.scheme, parsed.netloc) == ("s3", ARTIFACT_BUCKET), location
        prefix = parsed.path.lstrip("/")
    prefix = prefix.rstrip("/") + "/"
    return prefix, [key[len(prefix) :] for key in list_keys(s3, ARTIFACT_BUCKET, prefix)]


def test_artifacts_checkpoints_and_registered_model_are_objects_in_the_bucket(
    stack_env, s3, mlflow_on_s3: str, tmp_path: Path, faces: dict[str, bytes]
):
    folder = tmp_path / "faces"
    folder.mkdir()
    for name, data in faces.items():
        (folder / name).write_bytes(data)

    result = _run_pipeline(stack_env, _config(tmp_path, str(folder)))

    assert result["status"] == "completed"
    assert result["manifest_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    manifest_keys = _keys_under(s3, result["manifest_uri"])
    assert any(".parquet" in key for key in manifest_keys), manifest_keys  # df.parquet.gzip
    # The training set is its shards, written by build_dataset straight into its artifact's prefix: the index, the
    # rows and exactly the shards the index names, each of the size it records (tests/configs/tiny.yaml: 16 a shard).
    assert result["training_set_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    stored = _sizes_under(s3, result["training_set_uri"])
    assert {"index.json", "rows.npz"} <= stored.keys(), stored
    assert {key: size for key, size in stored.items() if key.startswith("shard-")} == result["shards"], stored
    assert len(result["shards"]) >= 2 and all(name.endswith(".tar") for name in result["shards"])
    listing = "\n".join(f"{size:>10}  {result['training_set_uri']}/{key}" for key, size in sorted(stored.items()))
    SHARD_LISTING.parent.mkdir(exist_ok=True)
    SHARD_LISTING.write_text(listing + "\n")
    assert result["checkpoint_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    checkpoint_keys = _keys_under(s3, result["checkpoint_uri"])
    assert checkpoint_keys, f"no checkpoint objects under {result['checkpoint_uri']}"
    assert _keys_under(s3, result["bundle_uri"])

    client = MlflowClient(tracking_uri=mlflow_on_s3)
    version = result["gate"]["version"]
    prefix, model_keys = _registered_model_keys(s3, client, version)
    assert "MLmodel" in model_keys, model_keys
    assert any(key.endswith("generator.pt") for key in model_keys), model_keys
    assert any(key.endswith("generator.json") for key in model_keys), model_keys
    run_id = client.get_model_version(MODEL, version).run_id
    run_keys = list_keys(s3, ARTIFACT_BUCKET, "mlflow/")
    assert any(run_id in key and key.endswith("samples/epoch_001.png") for key in run_keys)

    # The registered version loads from the bucket through the server and generates faces.
    import mlflow

    with use_tracking_uri(mlflow_on_s3):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        generated = model.predict(pd.DataFrame({"seed": [1, 2]}))
    assert generated.shape == (2, 16, 16, 3) and generated.dtype == np.uint8

    print(
        f"\nmanifest objects: {manifest_keys}\ncheckpoint objects: {checkpoint_keys}\n"
        f"model objects (s3://{ARTIFACT_BUCKET}/{prefix}): {model_keys}\n"
        f"training set objects ({SHARD_LISTING.relative_to(REPO_ROOT)}):\n{listing}"
    )


@pytest.mark.slow  # a second whole pipeline run; test_sources.py's S3 tests list and read an s3:// prefix
def test_a_second_run_reads_its_input_from_an_s3_prefix(
    stack_env, s3, s3_server: str, mlflow_on_s3: str, tmp_path: Path, faces: dict[str, bytes]
):
    for name, data in faces.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=f"faces/{name}", Body=data)
    s3.put_object(Bucket=DATA_BUCKET, Key="faces/README.txt", Body=b"not an image: not listed")
    s3.put_object(Bucket=DATA_BUCKET, Key="faces-archive/old.jpg", Body=next(iter(faces.values())))  # other prefix
    env = stack_env | CREDENTIALS | {"AWS_ENDPOINT_URL": s3_server}  # ingest reads s3:// with the usual AWS_* vars

    result = _run_pipeline(env, _config(tmp_path, f"s3://{DATA_BUCKET}/faces"))

    assert result["status"] == "completed"
    assert result["sources"] == [f"s3://{DATA_BUCKET}/faces/"]
    assert result["uris"] == [f"s3://{DATA_BUCKET}/faces/{name}" for name in sorted(faces)]
    assert result["manifest_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    client = MlflowClient(tracking_uri=mlflow_on_s3)
    _prefix, model_keys = _registered_model_keys(s3, client, result["gate"]["version"])
    assert "MLmodel" in model_keys
    assert int(result["gate"]["version"]) >= 2  # a new version of the same registered model
