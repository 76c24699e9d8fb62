"""configs/kubeflow.yaml on a Kubeflow Pipelines stack, compiled and submitted without a cluster.

The offline route: scripts/register_kubeflow_stack.sh registers the stack in an isolated ZenML store (S3 artifact
store, an image registry that is never contacted, and the orchestrator pointed at a KFP API on 127.0.0.1); the run
uses the prebuilt image as it is (``docker.skip_build``, so no Docker); ZenML builds the real `training` pipeline's
snapshot and its Kubeflow orchestrator (flavors/kubeflow_orchestrator.py) compiles it into the KFP v2 spec and calls
the KFP API, which a recording HTTP server answers. Only ZenML's "remote orchestrator needs a remote ZenML server"
check is skipped (``stack.submit_pipeline`` instead of the run's ``prepare_pipeline_submission``); the stack validator
(container registry, image builder) runs.

Specifies: the spec loads back with kfp's own loader; train_gan runs on the GPU pool (node selector, tolerations,
node affinity, GPU accelerator, memory, RAM-backed /dev/shm) and every other step on the CPU pool; the steps that sign
faces (train_gan, evaluate, evaluate_fairness, export_human_eval) and no others mount the facegen-provenance Secret;
S3 keys come from the facegen-s3 Secret by reference; the MLflow credentials are in no pod, only referenced by the
tracker ({{facegen-mlflow.*}}); every task retries; KFP caching is off (ZenML caches in the step); the schedule is a
KFP recurring run with a 6-field cron in the `training` experiment.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.local_servers import HOST

KFP_VENV = REPO_ROOT / ".venv-kubeflow"
KFP_PYTHON = KFP_VENV / "bin" / "python"
IMAGE = "registry.example.com/facegen/facegen:0.1.0"
SIGNING_STEPS = {"train_gan", "evaluate", "evaluate_fairness", "export_human_eval"}
PROVENANCE_MOUNT = "/opt/facegen/provenance"

SUBMIT = r"""
import sys, yaml
from zenml.client import Client
from pipelines.training import training

config = yaml.safe_load(open("configs/kubeflow.yaml"))
config["settings"]["docker"]["skip_build"] = True  # the prebuilt image as it is: no Docker on this machine
with open(sys.argv[1], "w") as f:
    yaml.safe_dump(config, f)
pipeline = training.with_options(config_path=sys.argv[1])
pipeline.prepare()
snapshot = pipeline._create_snapshot(**pipeline._run_args)
stack = Client().active_stack
stack.validate()
stack.submit_pipeline(snapshot=snapshot)
print("ORCHESTRATOR_DIR " + stack.orchestrator.pipeline_directory)
"""

# kfp's own loader reads the compiled package back (pipeline spec + Kubernetes platform spec, validated on load).
LOAD = r"""
import json, sys
from google.protobuf.json_format import MessageToDict
from kfp import components

component = components.load_component_from_file(sys.argv[1])
print(json.dumps({"name": component.name, "pipeline": MessageToDict(component.pipeline_spec),
                  "platform": MessageToDict(component.platform_spec)}))
"""


class RecordingKFP(BaseHTTPRequestHandler):
    """The KFP v2beta1 API calls the client makes for a recurring run, answered minimally and recorded."""

    requests: list[dict[str, Any]] = []

    def _answer(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append({"method": self.command, "path": self.path, "body": body})
        return body or {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._record()
        if self.path.startswith("/apis/v2beta1/experiments/"):  # the experiment named like the pipeline
            self._answer({"experiment_id": "exp-training", "display_name": self.path.rsplit("/", 1)[-1]})
        else:
            self._answer({})

    def do_POST(self) -> None:  # noqa: N802
        body = self._record()
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._answer({"experiment_id": "exp-training", "display_name": body.get("display_name")})
        elif self.path.startswith("/apis/v2beta1/recurringruns"):
            self._answer({**body, "recurring_run_id": "rr-weekly", "status": "ENABLED"})
        else:
            self._answer({})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def kfp_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    RecordingKFP.requests = []
    server = ThreadingHTTPServer((HOST, 0), RecordingKFP)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_port}", RecordingKFP.requests
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory, kfp_api) -> dict[str, Any]:
    """The compiled spec (pipeline + Kubernetes platform spec), the KFP API requests and the registered stack."""
    if not KFP_PYTHON.is_file():
        pytest.fail(f"{KFP_VENV} is missing: make .venv-kubeflow/.installed (kfp needs protobuf 6; .venv has 7)")
    url, requests = kfp_api
    state = tmp_path_factory.mktemp("zenml_kubeflow_state")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ZENML_", "KUBE"))},
        "ZENML_CONFIG_PATH": str(state / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "PYTHONPATH": str(REPO_ROOT),
        "FACEGEN_KFP_HOST": url,
        "FACEGEN_REGISTRY": "registry.example.com/facegen",
        "FACEGEN_ARTIFACT_STORE": "s3://facegen-artifacts/zenml",
        "FACEGEN_S3_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "registration-only",
        "AWS_SECRET_ACCESS_KEY": "registration-only",
        "FACEGEN_MLFLOW_PASSWORD": "registration-only-password",
        "FACEGEN_IMAGE": IMAGE,
        "FACEGEN_TRAINING_DATA": "s3://facegen-data/faces/",
    }
    registered = subprocess.run(
        ["bash", "scripts/register_kubeflow_stack.sh"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert registered.returncode == 0, registered.stdout[-3000:] + registered.stderr[-3000:]
    env["ZENML_ACTIVE_STACK_ID"] = registered.stdout.strip().splitlines()[-1]
    result = subprocess.run(
        [str(KFP_PYTHON), "-c", SUBMIT, str(state / "run.yaml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("ORCHESTRATOR_DIR ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    (spec_file,) = Path(lines[-1].removeprefix("ORCHESTRATOR_DIR ")).glob("*.yaml")
    shown = subprocess.run(
        [str(KFP_VENV / "bin" / "zenml"), "experiment-tracker", "describe", "facegen-mlflow"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = subprocess.run(
        [str(KFP_PYTHON), "-c", LOAD, str(spec_file)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    return {
        "spec_file": spec_file,
        **json.loads(loaded.stdout.strip().splitlines()[-1]),
        "requests": list(requests),
        "tracker": shown.stdout + shown.stderr,
    }


def _executor(submitted: dict[str, Any], step: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A step's container (pipeline spec) and its Kubernetes settings (platform spec)."""
    name = f"exec-{step.replace('_', '-')}"
    container = submitted["pipeline"]["deploymentSpec"]["executors"][name]["container"]
    return container, submitted["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][name]


def _steps(submitted: dict[str, Any]) -> list[str]:
    return [task["taskInfo"]["name"] for task in submitted["pipeline"]["root"]["dag"]["tasks"].values()]


def test_the_compiled_training_pipeline_loads_back_with_every_step_on_the_prebuilt_image(submitted) -> None:
    steps = _steps(submitted)
    assert {"ingest", "quality_filter", "build_dataset", "train_gan", "evaluate", "deploy_gate"} <= set(steps)
    for step in steps:
        container, _ = _executor(submitted, step)
        assert container["image"] == IMAGE  # ${FACEGEN_IMAGE}, used as it is (skip_build)
        assert container["args"][-2:] == ["--step_name", step]
    tasks = submitted["pipeline"]["root"]["dag"]["tasks"]
    assert set(tasks["train-gan"]["dependentTasks"]) >= {"build-dataset", "real-features"}  # the DAG, not a list


def test_train_gan_runs_on_the_gpu_pool_with_shared_memory(submitted) -> None:
    container, kubernetes = _executor(submitted, "train_gan")
    resources = container["resources"]
    assert (
        resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        and resources["accelerator"]["resourceCount"] == "1"
    )
    assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("6", "48Gi")
    assert resources["resourceMemoryLimit"] == "64Gi"
    assert kubernetes["nodeSelector"]["labels"] == {"facegen.io/pool": "gpu"}
    assert {(t["key"], t["operator"], t["effect"]) for t in kubernetes["tolerations"]} == {
        ("nvidia.com/gpu", "Exists", "NoSchedule"),
        ("facegen.io/pool", "Equal", "NoSchedule"),
    }
    (preferred,) = kubernetes["nodeAffinity"][0]["nodeAffinityJson"]["runtimeValue"]["constant"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred["preference"]["matchExpressions"][0]["key"] == "nvidia.com/gpu.product"
    assert kubernetes["emptyDirMounts"] == [
        {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "16Gi"}
    ]
    assert kubernetes["podMetadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert kubernetes["podMetadata"]["labels"]["app.kubernetes.io/component"] == "train-gan"  # training-pdb.yaml
    assert "secretAsEnv" not in kubernetes  # the GPU pod reads only artifacts: no S3 data keys


def test_every_other_step_runs_on_the_cpu_pool_without_a_gpu(submitted) -> None:
    for step in set(_steps(submitted)) - {"train_gan"}:
        container, kubernetes = _executor(submitted, step)
        assert "accelerator" not in container["resources"], step
        assert kubernetes["nodeSelector"]["labels"] == {"facegen.io/pool": "cpu"}, step
        assert "tolerations" not in kubernetes and "emptyDirMounts" not in kubernetes, step
        assert float(container["resources"]["resourceCpuRequest"]) <= 4, step
    container, _ = _executor(submitted, "build_dataset")
    assert (container["resources"]["resourceCpuRequest"], container["resources"]["resourceMemoryLimit"]) == (
        "4",
        "24Gi",
    )


def test_only_the_steps_that_sign_faces_mount_the_provenance_secret(submitted) -> None:
    mounting = set()
    for step in _steps(submitted):
        _, kubernetes = _executor(submitted, step)
        for volume in kubernetes.get("secretAsVolume", []):
            assert volume == {
                "secretName": "facegen-provenance",
                "secretNameParameter": {"runtimeValue": {"constant": "facegen-provenance"}},
                "mountPath": PROVENANCE_MOUNT,
                "optional": False,  # no Secret, no pod
            }
            mounting.add(step)
    assert mounting == SIGNING_STEPS


def test_credentials_are_references_never_values(submitted) -> None:
    _, kubernetes = _executor(submitted, "ingest")  # reads s3:// data: keys from the facegen-s3 Secret
    assert {(s["secretName"], s["keyToEnv"][0]["envVar"]) for s in kubernetes["secretAsEnv"]} == {
        ("facegen-s3", "AWS_ACCESS_KEY_ID"),
        ("facegen-s3", "AWS_SECRET_ACCESS_KEY"),
    }
    assert {c["configMapName"] for c in kubernetes["configMapAsEnv"]} == {"facegen-env"}
    spec_text = submitted["spec_file"].read_text()
    assert "registration-only" not in spec_text  # neither the S3 keys nor the MLflow password
    # The MLflow user stays in the ZenML secret facegen-mlflow; the tracker the steps use only references it.
    assert "{{facegen-mlflow.username}}" in submitted["tracker"]
    assert "{{facegen-mlflow.password}}" in submitted["tracker"] or "tracking_password" in submitted["tracker"]


def test_every_task_retries_and_kfp_caching_stays_off(submitted) -> None:
    for task in submitted["pipeline"]["root"]["dag"]["tasks"].values():
        assert task["retryPolicy"]["maxRetryCount"] == 2, task["taskInfo"]
        assert (task["retryPolicy"]["backoffDuration"], task["retryPolicy"]["backoffFactor"]) == ("60s", 2.0)
        # ZenML caches inside the step pod; a KFP cache hit would skip the container and ZenML would lose the step.
        assert task["cachingOptions"].get("enableCache", False) is False, task["taskInfo"]


def test_the_weekly_schedule_is_a_kfp_recurring_run_in_the_training_experiment(submitted) -> None:
    (request,) = [
        r for r in submitted["requests"] if r["method"] == "POST" and r["path"] == "/apis/v2beta1/recurringruns"
    ]
    body = request["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}  # KFP's 6-field cron: Mondays 03:00
    assert body["experiment_id"] == "exp-training" and body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    # The recurring run carries the whole compiled package: the pipeline and the Kubernetes platform spec.
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"] == submitted["pipeline"]["pipelineInfo"]
    assert body["pipeline_spec"]["platform_spec"] == submitted["platform"]
    assert any(r["path"] == "/apis/v2beta1/experiments/training" for r in submitted["requests"])


def test_pod_settings_kfp_cannot_carry_are_named_before_compiling() -> None:
    # envFrom and hostIPC have no KFP 2 equivalent: the k8s overlay's envFrom must become env keys here.
    probe = (
        "from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings as P\n"
        "from flavors.kubeflow_orchestrator import _unsupported\n"
        "print(_unsupported(P(env_from=[{'secretRef': {'name': 'facegen-s3'}}], host_ipc=True, labels={'a': 'b'})))"
    )
    result = subprocess.run([str(KFP_PYTHON), "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "['env_from', 'host_ipc']", result.stderr[-2000:]
