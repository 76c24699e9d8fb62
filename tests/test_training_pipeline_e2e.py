"""The `training` pipeline end to end: real ZenML runs on tiny real data against a real MLflow server on 127.0.0.1
whose artifacts live in S3 (moto's S3 server on 127.0.0.1).

Specifies: manifest accounting (kept + quarantined = ingested, bad files quarantined with reasons), finite FID/KID
logged to the MLflow run with sample grids, fairness of generated faces measured and tagged, a registered
`facegen-generator` version per run, the `candidate` alias rule (automatic gates, then raters' answers imported with
`facegen human-eval import`), `champion` moved only by approval, a clear failure for an empty source, and the
run browsable in ZenML's dashboard (`make dashboard`: scripts/zenml_dashboard.py) in headless Chromium.

The first run uses a local artifact store (the embedded default's); the second a stack whose ZenML artifact store is
S3 (endpoint in ``client_kwargs``, keys in a ZenML secret, none in the run's environment): its manifest (parquet), its
training set's shards with their index, its checkpoint and its registered model's files are objects in the bucket, and
the registered version loads and samples through the server. A third run (slow) reads its input images from an
``s3://`` prefix (keys from the environment).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.attribute_fixtures import register_production_attribute_model
from tests.conftest import REPO_ROOT
from tests.local_servers import HOST, popen_logged, start_on_free_port, stop, wait_http
from tests.mlflow_server import use_tracking_uri
from tests.s3_server import AWS_VARIABLES, CREDENTIALS, aws_env, list_keys, s3_client, start_mlflow_server_on_s3
from tests.test_human_eval_browser import browser  # noqa: F401  (the fixture: headless Chromium, fails without it)

pytestmark = pytest.mark.e2e

MODEL = "facegen-generator"
BIN = Path(sys.executable).parent
N_FACES = 40
ARTIFACT_BUCKET = "facegen-artifacts"  # ZenML under zenml/, MLflow under mlflow/
DATA_BUCKET = "facegen-data"
SECRET = "facegen-s3-test"
SHARD_LISTING = REPO_ROOT / "test-artifacts" / "s3_shard_listing.txt"  # the training set's objects, for the record


def _run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


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


def _register_stack(env: dict[str, str], stack: str, tracking_uri: str, *extra: str) -> str:
    """Register a facegen stack (scripts/zenml_stack.py) without activating it; returns its ID."""
    command = [str(BIN / "python"), "scripts/zenml_stack.py", "--stack", stack, "--tracking-uri", tracking_uri]
    command += ["--username", "facegen", "--password", "facegen", "--no-activate", *extra]
    return _run(command, env).stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def pipeline_mlflow(mlflow_on_s3: str) -> str:
    """The MLflow server this module's runs track to, its artifacts in the bucket (overrides conftest's, the
    session's ``mlflow_server``, which other modules importing ``zenml_env`` get)."""
    return mlflow_on_s3


@pytest.fixture(scope="module")
def zenml_env(
    tmp_path_factory, pipeline_mlflow: str, facegen_home: Path, tiny_attribute_bundle: Path
) -> dict[str, str]:
    """An isolated ZenML store with a local-artifact-store stack (active) whose MLflow tracker points at
    ``pipeline_mlflow``, where a (tiny, real) facegen-attributes@production classifies the generated faces for the
    fairness step. The run environment holds no AWS keys."""
    register_production_attribute_model(tiny_attribute_bundle, pipeline_mlflow)
    state = tmp_path_factory.mktemp("zenml_state")
    env = {key: value for key, value in os.environ.items() if key not in AWS_VARIABLES}
    env |= {
        "ZENML_CONFIG_PATH": str(state / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "FACEGEN_HOME": str(facegen_home),
        "MLFLOW_TRACKING_URI": pipeline_mlflow,
    }
    env["ZENML_ACTIVE_STACK_ID"] = _register_stack(env, "facegen-test", pipeline_mlflow)
    return env


@pytest.fixture(scope="module")
def s3_stack_env(tmp_path_factory, zenml_env: dict[str, str], s3_server: str) -> dict[str, str]:
    """``zenml_env`` with a second stack active: the same MLflow server, ZenML's S3 artifact store on the moto
    server, authenticated by a ZenML secret (the keys reach it from the registering environment, once). Nothing in
    the run may reach S3 except through the stack's own settings: no endpoint, no keys, no ~/.aws files."""
    env = zenml_env | aws_env(s3_server, tmp_path_factory.mktemp("aws"), credentials=False)
    env.pop("AWS_ENDPOINT_URL")
    env.pop("MLFLOW_S3_ENDPOINT_URL")
    s3_options = ["--artifact-store", f"s3://{ARTIFACT_BUCKET}/zenml", "--s3-endpoint-url", s3_server]
    s3_options += ["--s3-region", "us-east-1", "--s3-secret", SECRET]
    stack_id = _register_stack(env | CREDENTIALS, "facegen-s3-test", env["MLFLOW_TRACKING_URI"], *s3_options)
    return env | {"ZENML_ACTIVE_STACK_ID": stack_id}


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory, utkface_zip: Path, face_members: list[str]) -> Path:
    """Real faces plus three bad files: a truncated JPEG, a text file named .jpg, and an exact duplicate."""
    folder = tmp_path_factory.mktemp("faces")
    with zipfile.ZipFile(utkface_zip) as archive:
        for member in face_members[:N_FACES]:
            (folder / Path(member).name).write_bytes(archive.read(member))
    first = sorted(folder.iterdir())[0]
    (folder / "truncated.jpg").write_bytes(first.read_bytes()[:300])
    (folder / "notes.jpg").write_text("not an image")
    shutil.copy(first, folder / "copy_of_first.jpg")
    return folder


def _config(tmp_path: Path, source: Path | str, **gate: object) -> Path:
    config = yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text())
    config["parameters"]["source"] = str(source)
    config["steps"]["ingest"]["parameters"]["max_images"] = None
    config["steps"]["deploy_gate"]["parameters"].update(gate)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_pipeline(env: dict[str, str], config: Path, check: bool = True) -> subprocess.CompletedProcess:
    return _run([str(BIN / "zenml"), "pipeline", "run", "pipelines.training.training", "-c", str(config)], env, check)


INSPECT = """
import json
from zenml.client import Client
run = Client().get_pipeline(name_id_or_prefix="training").last_run
screened = run.steps["quality_filter"].outputs["screened_manifest"][0].load()
manifest = run.steps["ingest"].outputs["manifest"][0]
frame = manifest.load()
training_set = run.steps["build_dataset"].outputs["training_set"][0]
gate = run.steps["deploy_gate"].outputs["gate_decision"][0].load()
print(json.dumps({"status": run.status.value, "ingested": len(frame), "screened": len(screened),
                  "statuses": screened["status"].value_counts().to_dict(),
                  "reasons": screened.set_index("name")["reason"].dropna().to_dict(), "gate": gate,
                  "manifest_uri": manifest.uri, "training_set_uri": training_set.uri,
                  "shards": {info.name: info.bytes for info in training_set.load().shards},
                  "checkpoint_uri": run.steps["train_gan"].outputs["training_checkpoint"][0].uri,
                  "bundle_uri": run.steps["train_gan"].outputs["generator_bundle"][0].uri,
                  "uris": frame["uri"].tolist(), "sources": sorted(set(frame["source"]))}))
"""


def _inspect_last_run(env: dict[str, str]) -> dict:
    return json.loads(_run([str(BIN / "python"), "-c", INSPECT], env).stdout.strip().splitlines()[-1])


def _alias_version(client: MlflowClient, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(MODEL, alias).version
    except MlflowException:
        return None


def test_training_pipeline_registers_gates_and_never_moves_champion(
    zenml_env, s3_stack_env, s3, face_folder: Path, mlflow_on_s3: str, tmp_path: Path
):
    client = MlflowClient(tracking_uri=mlflow_on_s3)

    # Run 1: generous automatic gates, no champion yet, a human-evaluation minimum → version 1 waits for raters.
    human_eval_gate = {"min_fool_rate": 0.3, "min_ratings": 10}
    _run_pipeline(zenml_env, _config(tmp_path, face_folder, max_fid_inf=1000.0, human_eval_gate=human_eval_gate))
    first = _inspect_last_run(zenml_env)
    assert first["status"] == "completed"
    assert first["ingested"] == first["screened"] == N_FACES + 3
    assert first["statuses"].get("kept", 0) + first["statuses"].get("quarantined", 0) == first["ingested"]
    assert first["statuses"]["kept"] >= N_FACES - 2  # real faces pass (a blurry one may not)
    assert first["reasons"]["truncated.jpg"] == "undecodable"
    assert first["reasons"]["notes.jpg"] == "undecodable"
    assert first["reasons"]["copy_of_first.jpg"] == "duplicate_sha256"

    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    for metric in ("fid", "kid_mean", "kid_std", "is_mean", "nn_distance_p50", "latency_p50_ms"):
        assert math.isfinite(run.data.metrics[metric]), metric
    assert run.data.metrics["fid"] > 0 and run.data.metrics["is_mean"] > 1.0  # 1: every face classified alike
    counts = {"eval_num_generated": ("precision", "near_copy_share"), "eval_num_real": ("recall",)}
    for count, shares in counts.items():  # shares of whole samples: generated (precision, copies) or real (recall)
        for share in shares:
            whole = run.data.metrics[share] * int(run.data.params[count])
            assert whole == pytest.approx(round(whole), abs=1e-3), (share, count)
    assert run.data.metrics["latency_p50_ms"] <= run.data.metrics["latency_p95_ms"]
    assert run.data.tags["is_network"].startswith(("inception", "mobilenet"))
    assert "memorisation/closest_pairs.png" in {a.path for a in client.list_artifacts(run.info.run_id, "memorisation")}
    assert math.isfinite(run.data.metrics["train_fid"])  # FID at intervals during training, drawn over minutes
    assert "curves/fid.png" in {a.path for a in client.list_artifacts(run.info.run_id, "curves")}
    assert "train_loss_d" in run.data.metrics and "data_quarantined" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert "samples/epoch_001.png" in artifacts and "samples/evaluation_grid.png" in artifacts
    human_eval = {a.path for a in client.list_artifacts(run.info.run_id, "human_eval/rater")}
    assert {"human_eval/rater/index.html", "human_eval/rater/ratings_template.csv"} <= human_eval
    # data reports: GE suite (data docs + self-contained summary), drift note (no earlier run), balance charts
    validation = {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    assert {"validation/summary.html", "validation/data_docs", "validation/drift"} <= validation
    drift = {a.path for a in client.list_artifacts(run.info.run_id, "validation/drift")}
    assert drift == {"validation/drift/drift_report.html"}  # first run: a note, no comparison
    balance = {a.path for a in client.list_artifacts(run.info.run_id, "data/balance")}
    assert {"data/balance/balance_shares.png", "data/balance/balance_shares.csv"} <= balance
    assert run.data.metrics["validation_success"] == 1.0 and "quarantined_no_face" in run.data.metrics

    # the default's conditional model trained from the pipeline on the file-name labels, by config alone
    assert "age_bin" in run.data.params["train.model.conditioning"]
    assert "samples/by_attribute.png" in artifacts  # one row per ethnicity × gender, an age sweep
    # fairness of generated faces: corrected for the classifier's errors (raw kept beside), with intervals
    assert 0.0 <= run.data.metrics["fairness_gender_tv"] <= 1.0
    metrics = run.data.metrics
    assert 0.0 <= metrics["fairness_gender_tv_raw"] <= 1.0  # gender is the tiny config's only balanced attribute
    assert (
        metrics["fairness_gender_tv_ci_low"] <= metrics["fairness_gender_tv"] <= metrics["fairness_gender_tv_ci_high"]
    )
    assert 0.0 <= metrics["fairness_gender_perfect_pass_rate"] <= 1.0
    for attribute in ("gender", "age_bin", "ethnicity"):  # requested and read back for every conditioned attribute
        assert 0.0 <= metrics[f"fairness_{attribute}_conditional_accuracy"] <= 1.0
        assert 0.0 <= metrics[f"fairness_{attribute}_classifier_accuracy"] <= 1.0
    assert "fairness/generated_shares.png" in {a.path for a in client.list_artifacts(run.info.run_id, "fairness")}
    version = client.get_model_version(MODEL, "1")
    assert float(version.tags["fairness.gender.tv"]) == pytest.approx(run.data.metrics["fairness_gender_tv"], abs=1e-4)
    assert version.tags["gate_status"] == "awaiting_human_eval"
    assert first["gate"] == {**first["gate"], "version": "1", "passed": True, "gate_status": "awaiting_human_eval"}
    assert _alias_version(client, "candidate") is None

    # Raters' answers come back: 4 of the 10 generated faces were taken for the real photo → fool rate 0.4 ≥ 0.3.
    ratings = _ratings_fooled(client, version.run_id, fooled=4, dst=tmp_path)
    imported = _run(
        [str(BIN / "facegen"), "human-eval", "import", str(ratings), "--version", "1", "--tracking-uri", mlflow_on_s3],
        zenml_env,
    )
    assert "fool rate" in imported.stdout.lower(), imported.stdout
    version = client.get_model_version(MODEL, "1")
    assert version.tags["human_eval.fool_rate"] == "0.4000" and version.tags["human_eval.fool_n"] == "10"
    assert version.tags["gate_status"] == "passed"
    assert client.get_run(version.run_id).data.metrics["human_eval.fool_rate"] == pytest.approx(0.4)
    assert _alias_version(client, "candidate") == "1"
    assert _alias_version(client, "champion") is None  # neither the pipeline nor the import approves

    # A person approves version 1.
    _run([str(BIN / "facegen"), "approve", "1", "--by", "e2e-test", "--tracking-uri", mlflow_on_s3], zenml_env)
    assert _alias_version(client, "champion") == "1"

    # Run 2, on the S3 stack: an impossible FID ceiling → version 2 is registered but fails; candidate and champion
    # stay on 1.
    _run_pipeline(s3_stack_env, _config(tmp_path, face_folder, max_fid_inf=0.001))
    second = _inspect_last_run(s3_stack_env)
    assert first["manifest_uri"].startswith("/")  # run 1: the local artifact store
    _assert_run_artifacts_are_objects_in_the_bucket(s3, client, second, mlflow_on_s3)
    assert second["gate"]["version"] == "2" and second["gate"]["passed"] is False
    assert any(reason.startswith("FID∞") for reason in second["gate"]["reasons"])
    # Same data, seed and protocol: the champion is compared on stored features, not re-scored; the identical
    # retrained model is not significantly better (the bootstrap rule), and the gate says so.
    comparison = second["gate"]["champion_comparison"]
    v1_tags = client.get_model_version(MODEL, "1").tags
    assert comparison["rescored"] is False and comparison["champion_version"] == "1"
    assert comparison["protocol_id"] == comparison["champion_protocol_id"] == v1_tags["eval_protocol_id"]
    assert comparison["difference"]["metric"] == "kid" and comparison["better"] is False
    assert any("not significantly better than champion v1" in r for r in second["gate"]["reasons"])
    v2_tags = client.get_model_version(MODEL, "2").tags
    assert json.loads(v2_tags["label_vocabulary"])["age_bin"][-1] == "70+"
    assert {"eval_protocol_id", "champion_comparison"} <= set(v2_tags)
    outcome = _run([str(BIN / "facegen"), "outcome", "--tracking-uri", mlflow_on_s3], zenml_env).stdout
    assert "gate: FAILED" in outcome and "facegen-generator version 2" in outcome and "not significantly" in outcome
    assert client.get_model_version(MODEL, "2").tags["gate_status"] == "failed"
    assert _alias_version(client, "candidate") == "1"
    assert _alias_version(client, "champion") == "1"
    run2 = client.get_model_version(MODEL, "2").run_id
    drift2 = {a.path for a in client.list_artifacts(run2, "validation/drift")}
    assert "validation/drift/drift_report.json" in drift2  # the second run compares against the first
    key = client.download_artifacts(run2, "human_eval/answer_key.csv", str(tmp_path))
    assert "candidate_vs_champion" in Path(key).read_text()  # with a champion, the export compares against it


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


def _assert_run_artifacts_are_objects_in_the_bucket(s3, client: MlflowClient, run: dict, tracking_uri: str) -> None:
    """A run on the S3 stack: its manifest, training set, checkpoint, bundle and registered model are in the bucket,
    and the registered version loads from it through the server and generates faces."""
    assert run["status"] == "completed"
    assert run["manifest_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    manifest_keys = sorted(_sizes_under(s3, run["manifest_uri"]))
    assert any(".parquet" in key for key in manifest_keys), manifest_keys  # df.parquet.gzip
    # The training set is its shards, written by build_dataset straight into its artifact's prefix: the index, the
    # rows and exactly the shards the index names, each of the size it records (tests/configs/tiny.yaml: 16 a shard).
    assert run["training_set_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    stored = _sizes_under(s3, run["training_set_uri"])
    assert {"index.json", "rows.npz"} <= stored.keys(), stored
    assert {key: size for key, size in stored.items() if key.startswith("shard-")} == run["shards"], stored
    assert len(run["shards"]) >= 2 and all(name.endswith(".tar") for name in run["shards"])
    listing = "\n".join(f"{size:>10}  {run['training_set_uri']}/{key}" for key, size in sorted(stored.items()))
    SHARD_LISTING.parent.mkdir(exist_ok=True)
    SHARD_LISTING.write_text(listing + "\n")
    assert run["checkpoint_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    assert _sizes_under(s3, run["checkpoint_uri"]), f"no checkpoint objects under {run['checkpoint_uri']}"
    assert _sizes_under(s3, run["bundle_uri"])

    version = run["gate"]["version"]
    prefix, model_keys = _registered_model_keys(s3, client, version)
    assert "MLmodel" in model_keys, model_keys
    assert any(key.endswith("generator.pt") for key in model_keys), model_keys
    assert any(key.endswith("generator.json") for key in model_keys), model_keys
    run_id = client.get_model_version(MODEL, version).run_id
    run_keys = list_keys(s3, ARTIFACT_BUCKET, "mlflow/")
    assert any(run_id in key and key.endswith("samples/epoch_001.png") for key in run_keys)

    import mlflow

    with use_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        generated = model.predict(pd.DataFrame({"seed": [1, 2]}))
    assert generated.shape == (2, 16, 16, 3) and generated.dtype == np.uint8
    print(
        f"\nmanifest objects: {manifest_keys}\nmodel objects (s3://{ARTIFACT_BUCKET}/{prefix}): {model_keys}\n"
        f"training set objects ({SHARD_LISTING.relative_to(REPO_ROOT)}):\n{listing}"
    )


def _ratings_fooled(client: MlflowClient, run_id: str, *, fooled: int, dst: Path) -> Path:
    """The run's rater template filled in by one rater who picks the generated face as real in ``fooled`` of the
    real_vs_generated pairs (the answer key says which side that is) and the real photo in the others."""
    template = Path(client.download_artifacts(run_id, "human_eval/rater/ratings_template.csv", str(dst)))
    key_path = Path(client.download_artifacts(run_id, "human_eval/answer_key.csv", str(dst)))
    with key_path.open(newline="") as handle:
        generated_side = {row["pair_id"]: row["generated_side"] for row in csv.DictReader(handle)}
    with template.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    for i, row in enumerate(row for row in rows if row["task"] == "real_vs_generated"):
        side = generated_side[row["pair_id"]]
        row["choice"] = side if i < fooled else {"left": "right", "right": "left"}[side]
    for row in rows:
        row["rater"] = "e2e-rater"
    filled = dst / "ratings_e2e.csv"
    with filled.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return filled


LAST_COMPLETED_RUN = """
from zenml.client import Client
runs = Client().list_pipeline_runs(pipeline_name="training", status="completed", sort_by="desc:created", size=1)
print(runs.items[0].id if runs.items else "")
"""
DASHBOARD_PYTHON = REPO_ROOT / ".venv-dashboard" / "bin" / "python"  # zenml[server] (Makefile: .venv-dashboard)
DASHBOARD_STARTUP_S = 180.0
DASHBOARD_RENDER_S = 180.0
RUN_PAGE_NAMES = (
    "ingest",
    "quality_filter",
    "train_gan",
    "evaluate",
    "deploy_gate",
    "generator_bundle",
    "gate_decision",
)
SCREENSHOT = REPO_ROOT / "test-artifacts" / "dashboard_run.png"


@pytest.fixture(scope="module")
def completed_training_run(zenml_env, face_folder: Path, tmp_path_factory) -> str:
    """The ID of the module store's latest completed `training` run: the pipeline test's second run, or one run here
    when this test runs alone."""

    def last_completed() -> str:
        return _run([str(BIN / "python"), "-c", LAST_COMPLETED_RUN], zenml_env).stdout.strip().rpartition("\n")[2]

    if not last_completed():
        _run_pipeline(zenml_env, _config(tmp_path_factory.mktemp("dashboard_run"), face_folder))
    run_id = last_completed()
    assert run_id, "no completed `training` run in the module's store"
    return run_id


def test_dashboard_shows_the_runs_dag_offline(zenml_env, completed_training_run: str, browser, tmp_path: Path):
    """`make dashboard`'s launcher serves ZenML's own dashboard for the store on 127.0.0.1 without a login, names the
    latest run's page, and that page draws the run's steps and artifacts with no other server to reach."""
    driver: WebDriver = browser[0]
    if not DASHBOARD_PYTHON.is_file():
        pytest.fail(f"{DASHBOARD_PYTHON} is missing: run `make .venv-dashboard/.installed` (the zenml[server] extra)")
    log = tmp_path / "dashboard.log"

    def launch(port: int) -> subprocess.Popen:
        command = [str(DASHBOARD_PYTHON), str(REPO_ROOT / "scripts/zenml_dashboard.py"), "--port", str(port)]
        return popen_logged(command, log, zenml_env, cwd=REPO_ROOT)

    def wait(port: int, process: subprocess.Popen) -> None:
        wait_http(f"http://{HOST}:{port}/health", process, log, DASHBOARD_STARTUP_S)

    port, process = start_on_free_port(launch, wait, log)
    try:
        base = f"http://{HOST}:{port}"
        printed = re.search(r"latest `training` run \(completed\): (\S+)", log.read_text())
        assert printed, log.read_text()[-2000:]
        url = printed.group(1)
        assert url.startswith(f"{base}/projects/") and url.endswith(f"/runs/{completed_training_run}")
        with urllib.request.urlopen(f"{base}/api/v1/info", timeout=30) as response:
            assert json.load(response)["auth_scheme"] == "NO_AUTH"  # as `zenml login --local` serves it

        driver.get(url)
        try:
            WebDriverWait(driver, DASHBOARD_RENDER_S, poll_frequency=1.0).until(
                lambda d: all(name in d.execute_script("return document.body.innerText") for name in RUN_PAGE_NAMES)
            )
        finally:
            driver.save_screenshot(str(tmp_path / SCREENSHOT.name))
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copy(tmp_path / SCREENSHOT.name, SCREENSHOT)
            print(f"dashboard screenshot: {SCREENSHOT} (and {tmp_path / SCREENSHOT.name})")
        assert driver.current_url.startswith(url)  # the run's page itself (?tab=…), not a sign-up or login form
        # offline: the app, its fonts and data all come from the local server; only decorative <img>s (a project logo,
        # an avatar) point elsewhere and stay blank without a network
        fetched = driver.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.initiatorType !== 'img').map(e => e.name)"
        )
        assert fetched and all(name.startswith((f"{base}/", "data:")) for name in fetched), fetched
    except TimeoutException:
        body = driver.execute_script("return document.body.innerText")
        pytest.fail(
            f"{url} never showed all of {RUN_PAGE_NAMES} in {DASHBOARD_RENDER_S:.0f} s; page text:\n{body[:2000]}"
        )
    finally:
        stop(process)


def test_empty_source_fails_with_a_message_naming_it(zenml_env, tmp_path: Path):
    empty = tmp_path / "no_images_here"
    empty.mkdir()
    result = _run_pipeline(zenml_env, _config(tmp_path, empty), check=False)
    assert result.returncode != 0
    assert "no images found" in result.stdout + result.stderr
    assert str(empty) in result.stdout + result.stderr


@pytest.mark.slow  # a third whole pipeline run; test_sources.py's S3 tests list and read an s3:// prefix
def test_a_run_reads_its_input_from_an_s3_prefix(
    s3_stack_env, s3, s3_server: str, face_folder: Path, mlflow_on_s3: str, tmp_path: Path
):
    faces = sorted(path for path in face_folder.glob("*.jpg") if path.name[0].isdigit())[:N_FACES]
    for path in faces:
        s3.put_object(Bucket=DATA_BUCKET, Key=f"faces/{path.name}", Body=path.read_bytes())
    s3.put_object(Bucket=DATA_BUCKET, Key="faces/README.txt", Body=b"not an image: not listed")
    s3.put_object(Bucket=DATA_BUCKET, Key="faces-archive/old.jpg", Body=faces[0].read_bytes())  # other prefix
    env = s3_stack_env | CREDENTIALS | {"AWS_ENDPOINT_URL": s3_server}  # ingest reads s3:// with the usual AWS_* vars

    _run_pipeline(env, _config(tmp_path, f"s3://{DATA_BUCKET}/faces", max_fid_inf=1000.0))
    result = _inspect_last_run(env)

    assert result["status"] == "completed"
    assert result["sources"] == [f"s3://{DATA_BUCKET}/faces/"]
    assert result["uris"] == [f"s3://{DATA_BUCKET}/faces/{path.name}" for path in faces]
    assert result["manifest_uri"].startswith(f"s3://{ARTIFACT_BUCKET}/zenml/")
    client = MlflowClient(tracking_uri=mlflow_on_s3)
    _prefix, model_keys = _registered_model_keys(s3, client, result["gate"]["version"])
    assert "MLmodel" in model_keys
