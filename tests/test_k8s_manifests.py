"""k8s/ and configs/k8s.yaml, checked offline (no cluster): every manifest against the Kubernetes 1.30 schemas.

Specifies: the kustomize base and overlays render (``kubectl kustomize``, kustomize's own engine) and every object
they hold, the DDP job's inputs, the PyTorchJob's pod template, and the Jobs and CronJob that ZenML's Kubernetes
orchestrator would create from configs/k8s.yaml validate strictly (``kubernetes-validate``: wrong types and unknown
fields fail); the generator and MLflow services have probes, resources, autoscaling and disruption budgets; the
PyTorchJob runs exactly the trainer's torchrun command on as many GPUs as it starts processes; the run config loads
into ZenML's own models, and on a Kubernetes stack registered by scripts/register_k8s_stack.sh the compiled
train_gan step gets the GPU pool (GPU limits, node selector, tolerations, RAM-backed /dev/shm, no eviction) while
every other step gets modest CPU-pool requests, and the schedule becomes a CronJob that forbids overlapping runs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scripts.mlflow_users import GRANTS
from tests.conftest import REPO_ROOT

K8S = REPO_ROOT / "k8s"
K8S_VERSION = "1.30.0"
OVERLAYS = ["base", "overlays/staging", "overlays/production"]
NAMESPACE = "facegen"
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}
BIN = Path(sys.executable).parent
TORCHRUN = [
    "torchrun",
    "--nproc_per_node=4",
    "-m",
    "facegen.train.ddp_main",
    "--shards",
    "$(TRAINING_SET_URI)",  # the training_set artifact in S3, opened by every process
    "--config",
    "/config/train.yaml",
    "--out",
    "/out",
    "--remote",
    "$(FACEGEN_DDP_REMOTE)",  # expanded by Kubernetes from the container's env
    "--resume",
]


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number (cores or bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match.group(1)) * units.get(match.group(2), 1)


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl (with its built-in kustomize) is not on PATH")
    return path


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[dict]]:
    """Objects of the base and each overlay, rendered by ``kubectl kustomize``."""
    out = {}
    for name in OVERLAYS:
        result = subprocess.run([kubectl, "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"kustomize {name} failed:\n{result.stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _yaml_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# ------------------------------------------------------------------------------------------------ schemas


def test_every_rendered_object_validates_strictly(rendered: dict[str, list[dict]]) -> None:
    expected = {
        ("Namespace", "facegen"),
        ("PriorityClass", "facegen-training"),
        ("PriorityClass", "facegen-serving"),
        ("ConfigMap", "facegen-env"),
        ("ServiceAccount", "facegen-zenml"),
        ("ServiceAccount", "facegen-steps"),
        ("Role", "facegen-zenml-orchestrator"),
        ("RoleBinding", "facegen-zenml-orchestrator"),
        ("PodDisruptionBudget", "facegen-training"),
        ("Service", "mlflow-postgres"),
        ("StatefulSet", "mlflow-postgres"),
        ("Service", "mlflow"),
        ("Deployment", "mlflow"),
        ("ConfigMap", "facegen-serve"),
        ("Service", "facegen-generator"),
        ("Deployment", "facegen-generator"),
        ("HorizontalPodAutoscaler", "facegen-generator"),
        ("PodDisruptionBudget", "facegen-generator"),
        ("ConfigMap", "mlflow-auth"),
        ("Job", "mlflow-users"),
    }
    for name, objects in rendered.items():
        assert {(o["kind"], o["metadata"]["name"]) for o in objects} == expected, name
        for obj in objects:
            validate(obj)
            if obj["kind"] not in CLUSTER_SCOPED:
                assert obj["metadata"].get("namespace") == NAMESPACE, (name, obj["kind"], obj["metadata"]["name"])
    print(
        f"\nvalidated strictly against Kubernetes {K8S_VERSION}: "
        + ", ".join(f"{name} ({len(objects)} objects)" for name, objects in rendered.items())
    )


def test_every_file_under_k8s_is_a_kustomization_or_validates(rendered: dict[str, list[dict]]) -> None:
    """Nothing under k8s/ escapes validation: core objects strictly; the PyTorchJob (a CRD) by its own test."""
    files = sorted(K8S.rglob("*.yaml"))
    assert files
    for path in files:
        for doc in _yaml_docs(path):
            if doc["kind"] == "Kustomization" or doc["apiVersion"] == "kubeflow.org/v1":
                continue
            validate(doc)


def test_strict_validation_rejects_unknown_fields_and_wrong_types(rendered: dict[str, list[dict]]) -> None:
    deployment = _one(rendered["base"], "Deployment", "facegen-generator")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    for broken in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(broken)


def test_no_secret_material_in_k8s_or_configs() -> None:
    texts = {path: path.read_text() for path in [*K8S.rglob("*.yaml"), REPO_ROOT / "configs/k8s.yaml"]}
    for path, text in texts.items():
        for doc in yaml.safe_load_all(text):
            assert not doc or doc.get("kind") != "Secret", f"{path} holds a Secret: create Secrets by hand"
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), path
        assert not re.search(r"(?i)(password|secret_access_key|token)\s*[:=]\s*['\"]?\w{6,}", text), path


# ------------------------------------------------------------------------------------------------ overlays


def test_overlays_set_images_storage_endpoints_and_scale(rendered: dict[str, list[dict]]) -> None:
    for name in ("overlays/staging", "overlays/production"):
        images = [
            c["image"]
            for o in rendered[name]
            if o["kind"] in ("Deployment", "StatefulSet")
            for c in o["spec"]["template"]["spec"].get("initContainers", [])
            + o["spec"]["template"]["spec"]["containers"]
        ]
        assert all(":" in image and not image.endswith(":latest") for image in images), (name, images)  # pinned
        ours = [image for image in images if "facegen" in image]
        assert len(ours) == 3 and all(image.count("/") >= 1 for image in ours), (name, images)  # registry/name:tag
    staging = _one(rendered["overlays/staging"], "ConfigMap", "facegen-env")["data"]
    production = _one(rendered["overlays/production"], "ConfigMap", "facegen-env")["data"]
    assert staging["AWS_ENDPOINT_URL"] == staging["MLFLOW_S3_ENDPOINT_URL"]  # MinIO for boto3 and MLflow alike
    assert "AWS_ENDPOINT_URL" not in production and "MLFLOW_S3_ENDPOINT_URL" not in production  # AWS S3
    for data in (staging, production):
        assert data["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    hpa = {name: _one(rendered[name], "HorizontalPodAutoscaler", "facegen-generator")["spec"] for name in OVERLAYS}
    assert (hpa["overlays/staging"]["minReplicas"], hpa["overlays/production"]["minReplicas"]) == (1, 3)
    assert hpa["overlays/production"]["maxReplicas"] > hpa["base"]["maxReplicas"]


# ------------------------------------------------------------------------------------------------ services


def test_generator_service_probes_secret_autoscaling_and_disruption_budget(rendered: dict[str, list[dict]]) -> None:
    objects = rendered["overlays/production"]
    deployment = _one(objects, "Deployment", "facegen-generator")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == [
        "facegen",
        "serve",
        "--config",
        "/config/serve.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    assert env["FACEGEN_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "facegen-admin",
        "key": "FACEGEN_ADMIN_TOKEN",
    }
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]["name"] == "facegen-env"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts["/config"]]["configMap"]["name"] == "facegen-serve"

    service = _one(objects, "Service", "facegen-generator")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    hpa = _one(objects, "HorizontalPodAutoscaler", "facegen-generator")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "facegen-generator"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    pdb = _one(objects, "PodDisruptionBudget", "facegen-generator")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pdb["maxUnavailable"] < hpa["minReplicas"]  # a drain never takes every generator away


def test_serve_config_in_the_configmap_is_accepted_by_the_service_settings(rendered: dict[str, list[dict]]) -> None:
    settings_module = pytest.importorskip("facegen.serve.settings")
    objects = rendered["base"]
    serve_yaml = _one(objects, "ConfigMap", "facegen-serve")["data"]["serve.yaml"]
    container = _one(objects, "Deployment", "facegen-generator")["spec"]["template"]["spec"]["containers"][0]
    literal_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config = Path(os.environ.get("TMPDIR", "/tmp")) / f"facegen-serve-{os.getpid()}.yaml"
    config.write_text(serve_yaml)
    try:
        settings = settings_module.load_settings(config, environ=literal_env)
    finally:
        config.unlink()
    assert settings.model_uri() == "models:/facegen-generator@champion"
    assert settings.tracking_uri is None  # from MLFLOW_TRACKING_URI at run time, not from the file
    assert str(settings.resolved_feedback_db()) == literal_env["FACEGEN_SERVE_FEEDBACK_DB"]


def test_mlflow_server_has_postgres_backend_s3_artifacts_and_probes(rendered: dict[str, list[dict]]) -> None:
    objects = rendered["overlays/production"]
    pod = _one(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = " ".join(container["command"] + container["args"])
    assert "mlflow server" in command and '--backend-store-uri "$MLFLOW_BACKEND_STORE_URI"' in command
    assert '--artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION"' in command
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db"
    env_from = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert env_from == {"facegen-env", "facegen-s3"}  # artifacts destination + S3 keys (only this pod holds them)
    assert pod["initContainers"][0]["command"][-1].startswith("exec mlflow db upgrade")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    postgres = _one(objects, "StatefulSet", "mlflow-postgres")["spec"]
    assert postgres["template"]["spec"]["containers"][0]["image"].startswith("postgres:")
    assert postgres["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    service = _one(objects, "Service", "mlflow")
    assert env_value(_one(objects, "ConfigMap", "facegen-env"), "MLFLOW_TRACKING_URI").startswith(
        f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    )


def env_value(configmap: dict, key: str) -> str:
    return configmap["data"][key]


def _secret_env(container: dict) -> dict[str, tuple[str, str]]:
    """Env var → (Secret, key) for every variable the container takes from a Secret."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_mlflow_runs_the_basic_auth_app_with_the_admin_from_a_secret(
    rendered: dict[str, list[dict]], tmp_path: Path
) -> None:
    from mlflow.server.auth.config import read_auth_config

    objects = rendered["overlays/production"]
    pod = _one(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "mlflow server --app-name basic-auth" in container["args"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    secrets = _secret_env(container)
    assert secrets["MLFLOW_AUTH_ADMIN_USERNAME"] == ("mlflow-admin", "MLFLOW_TRACKING_USERNAME")
    assert secrets["MLFLOW_AUTH_ADMIN_PASSWORD"] == ("mlflow-admin", "MLFLOW_TRACKING_PASSWORD")
    assert secrets["MLFLOW_FLASK_SERVER_SECRET_KEY"][0] == "mlflow-admin"
    ini = _one(objects, "ConfigMap", "mlflow-auth")["data"]["basic_auth.ini"]
    assert not re.search(r"(?m)^\s*(admin_password|database_uri)\s*=", ini)  # secrets stay in Secrets
    # The start command composes the config the server reads: run it (up to the server) against a temp dir.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (config_mount,) = [
        mounts[name] for name, v in volumes.items() if v.get("configMap", {}).get("name") == "mlflow-auth"
    ]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "basic_auth.ini").write_text(ini)
    compose = container["args"][0].split("exec mlflow server")[0].replace(config_mount, str(tmp_path / "config"))
    config_path = tmp_path / "runtime" / Path(env["MLFLOW_AUTH_CONFIG_PATH"]).name
    backend = "postgresql://mlflow:0123abcd@mlflow-postgres:5432/mlflow"
    result = subprocess.run(
        ["sh", "-c", compose + " true"],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "PATH": os.environ["PATH"],
            "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
            "MLFLOW_BACKEND_STORE_URI": backend,
        },
    )
    assert result.returncode == 0, result.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config_path))
        patch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
        patch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-secret")
        config = read_auth_config()
    assert (config.database_uri, config.default_permission) == (backend, "NO_PERMISSIONS")
    assert (config.admin_username, config.admin_password) == ("admin", "from-the-secret")
    auth_runtime = [
        v for v in volumes.values() if "emptyDir" in v and mounts[v["name"]] in env["MLFLOW_AUTH_CONFIG_PATH"]
    ]
    assert auth_runtime and auth_runtime[0]["emptyDir"]["medium"] == "Memory"  # the composed file holds a password


def test_users_job_runs_the_bootstrap_with_each_roles_secret_and_pods_use_theirs(
    rendered: dict[str, list[dict]],
) -> None:
    objects = rendered["overlays/production"]
    job = _one(objects, "Job", "mlflow-users")["spec"]
    (container,) = job["template"]["spec"]["containers"]
    script = container["command"][-1]
    assert container["command"] == ["python", script] and script.endswith("scripts/mlflow_users.py")
    assert f"COPY scripts/mlflow_users.py {script}" in (REPO_ROOT / "Dockerfile").read_text()  # in the facegen image
    secrets = _secret_env(container)
    assert secrets["MLFLOW_TRACKING_USERNAME"] == ("mlflow-admin", "MLFLOW_TRACKING_USERNAME")
    assert secrets["MLFLOW_TRACKING_PASSWORD"] == ("mlflow-admin", "MLFLOW_TRACKING_PASSWORD")
    for role in GRANTS:
        for field in ("USERNAME", "PASSWORD"):
            assert secrets[f"FACEGEN_MLFLOW_{role.upper()}_{field}"] == (f"mlflow-{role}", f"MLFLOW_TRACKING_{field}")
    assert job["template"]["spec"]["restartPolicy"] == "OnFailure" and job["backoffLimit"] > 0  # waits for MLflow
    generator = _one(objects, "Deployment", "facegen-generator")["spec"]["template"]["spec"]["containers"][0]
    assert {key: value for key, value in _secret_env(generator).items() if key.startswith("MLFLOW_")} == {
        "MLFLOW_TRACKING_USERNAME": ("mlflow-service", "MLFLOW_TRACKING_USERNAME"),
        "MLFLOW_TRACKING_PASSWORD": ("mlflow-service", "MLFLOW_TRACKING_PASSWORD"),
    }


# ------------------------------------------------------------------------------------------------ DDP job


def test_pytorchjob_runs_the_trainers_torchrun_command_with_ddp_on_gpus(rendered: dict[str, list[dict]]) -> None:
    (job,) = _yaml_docs(K8S / "training/pytorchjob-ddp.yaml")
    inputs = {(d["kind"], d["metadata"]["name"]): d for d in _yaml_docs(K8S / "training/ddp-inputs.yaml")}
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert job["metadata"]["namespace"] == NAMESPACE and job["metadata"]["generateName"]
    assert set(job["spec"]["runPolicy"]) >= {"backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"}
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) <= {"Master", "Worker"} and replicas["Master"]["replicas"] == 1
    for spec in replicas.values():
        assert spec["restartPolicy"] in {"OnFailure", "ExitCode"}
        template = spec["template"]
        validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "pytorchjob-template"},
                "template": template,
            }
        )
        pod = template["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == "pytorch"]  # the operator's container name
        assert container["command"] == TORCHRUN
        nproc = int(TORCHRUN[1].split("=")[1])
        assert int(job["spec"]["nprocPerNode"]) == nproc
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == nproc  # one process per GPU
        assert pod["nodeSelector"] == {"facegen.io/pool": "gpu"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        assert volumes[mounts["/config"]]["configMap"]["name"] == "facegen-ddp-train"
        assert "emptyDir" in volumes[mounts["/out"]]  # node-local: what must outlive a pod is in S3 (--remote)
        env = [item["name"] for item in container["env"]]
        values = {item["name"]: item for item in container["env"]}
        assert values["FACEGEN_DDP_REMOTE"]["value"] == "$(DDP_REMOTE_ROOT)/$(JOB_NAME)"  # one prefix per job
        assert env.index("DDP_REMOTE_ROOT") < env.index("FACEGEN_DDP_REMOTE") > env.index("JOB_NAME")  # defined first
        label = "metadata.labels['training.kubeflow.org/job-name']"  # the Training Operator's job-name label
        assert values["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == label
        assert values["DDP_REMOTE_ROOT"]["valueFrom"]["configMapKeyRef"] == {
            "name": "facegen-ddp-train",
            "key": "REMOTE_ROOT",
        }
        assert {"secretRef": {"name": "facegen-s3", "optional": True}} in container["envFrom"]  # S3 keys to write
        assert values["TRAINING_SET_URI"]["valueFrom"]["configMapKeyRef"] == {
            "name": "facegen-ddp-train",
            "key": "TRAINING_SET_URI",
        }
        assert "/data" not in mounts and not pod.get("initContainers")  # streamed from S3, never copied to the pod
        assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
        assert pod["priorityClassName"] == "facegen-training"
        training_pdb = _one(rendered["base"], "PodDisruptionBudget", "facegen-training")["spec"]
        assert training_pdb["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert set(inputs) == {("ConfigMap", "facegen-ddp-train")}
    assert inputs["ConfigMap", "facegen-ddp-train"]["data"]["REMOTE_ROOT"].startswith("s3://")
    assert inputs["ConfigMap", "facegen-ddp-train"]["data"]["TRAINING_SET_URI"].startswith("s3://")
    train = yaml.safe_load(inputs["ConfigMap", "facegen-ddp-train"]["data"]["train.yaml"])
    from facegen.train.config import TrainingConfig

    assert TrainingConfig.from_dict(train).device == "cuda"


# ------------------------------------------------------------------------------------------------ configs/k8s.yaml


def _run_config() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "configs/k8s.yaml").read_text())


def test_k8s_run_config_loads_into_zenmls_models() -> None:
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
    from zenml.integrations.kubernetes.flavors import KubernetesOrchestratorSettings

    raw = _run_config()
    config = PipelineRunConfiguration.model_validate(raw)
    assert config.schedule.cron_expression == "0 3 * * 1" and config.schedule.name
    pipeline_settings = KubernetesOrchestratorSettings.model_validate(dict(config.settings["orchestrator.kubernetes"]))
    assert pipeline_settings.concurrency_policy == "Forbid"  # scheduled runs never overlap
    assert pipeline_settings.active_deadline_seconds and pipeline_settings.starting_deadline_seconds is not None
    assert config.settings["docker"].parent_image == "${FACEGEN_IMAGE}"  # the image comes from the environment
    assert {"ingest", "train_gan", "evaluate", "deploy_gate"} <= set(config.steps)
    for step in raw["steps"].values():
        step_settings = step.get("settings", {}).get("orchestrator.kubernetes")
        if step_settings:
            KubernetesOrchestratorSettings.model_validate(step_settings)


COMPILE = r"""
import json, sys
from zenml.client import Client
from zenml.integrations.kubernetes import kube_utils
from zenml.integrations.kubernetes.manifest_utils import (
    build_cron_job_manifest, build_job_manifest, build_pod_manifest, job_template_manifest_from_job,
    pod_template_manifest_from_pod)
from zenml.integrations.kubernetes.serialization_utils import serialize_kubernetes_model
from pipelines.training import training

stack = Client().active_stack
pipeline = training.with_options(config_path="configs/k8s.yaml")
pipeline._prepare_if_possible()
snapshot, schedule, _ = pipeline._compile(config_path="configs/k8s.yaml")
orchestrator = stack.orchestrator
image = snapshot.pipeline_configuration.settings["docker"].parent_image
model = Client().active_stack_model
out = {"stack": {kind.value: [c.flavor_name for c in components] for kind, components in model.components.items()},
       "orchestrator": {"flavor": orchestrator.flavor, "namespace": orchestrator.config.kubernetes_namespace,
                        "context": orchestrator.config.kubernetes_context},
       "artifact_store": stack.artifact_store.path, "image": image,
       "schedule": schedule.cron_expression, "steps": {}}
# Each step's Job exactly as ZenML's orchestrator pod builds it (kubernetes_orchestrator_entrypoint.start_step_job).
for name, step in snapshot.step_configurations.items():
    settings = orchestrator.get_settings(step)
    pod_settings = kube_utils.apply_default_resource_requests(memory="400Mi", pod_settings=settings.pod_settings)
    pod = build_pod_manifest(pod_name=None, image_name=image, command=["python", "-m", "zenml.entrypoints.entrypoint"],
                             args=["--step_name", name], env={"ZENML_STEP": name}, privileged=settings.privileged,
                             pod_settings=pod_settings,
                             service_account_name=settings.step_pod_service_account_name or settings.service_account_name,
                             termination_grace_period_seconds=settings.pod_stop_grace_period,
                             labels={"pipeline": "training", "step_name": name})
    job = build_job_manifest(job_name=f"x-training-{name}".replace("_", "-"),
                             pod_template=pod_template_manifest_from_pod(pod),
                             backoff_limit=settings.backoff_limit_margin,
                             ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
                             active_deadline_seconds=settings.active_deadline_seconds,
                             pod_failure_policy={"rules": [{"action": "Ignore", "onPodConditions": [
                                 {"type": "DisruptionTarget", "status": "True"}]}]},
                             labels={"step_name": name})
    out["steps"][name] = serialize_kubernetes_model(job)
# The orchestrator Job and the CronJob wrapping it, as KubernetesOrchestrator._submit_orchestrator_job builds them.
settings = orchestrator.get_settings(snapshot)
orchestrator_pod_settings = kube_utils.apply_default_resource_requests(
    memory="400Mi", cpu="100m", pod_settings=settings.orchestrator_pod_settings)
pod = build_pod_manifest(pod_name=None, image_name=image, command=["python", "-m", "zenml.orchestrator"], args=[],
                         privileged=False, pod_settings=orchestrator_pod_settings,
                         service_account_name=settings.service_account_name,
                         termination_grace_period_seconds=settings.pod_stop_grace_period)
job = build_job_manifest(job_name="x-training", pod_template=pod_template_manifest_from_pod(pod),
                         backoff_limit=settings.orchestrator_job_backoff_limit,
                         ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
                         active_deadline_seconds=settings.active_deadline_seconds, labels={"pipeline": "training"})
cron = build_cron_job_manifest(cron_expression=schedule.cron_expression,
                               job_template=job_template_manifest_from_job(job),
                               successful_jobs_history_limit=settings.successful_jobs_history_limit,
                               failed_jobs_history_limit=settings.failed_jobs_history_limit,
                               concurrency_policy=settings.concurrency_policy,
                               starting_deadline_seconds=settings.starting_deadline_seconds)
out["cron_job"] = serialize_kubernetes_model(cron)
print("COMPILED " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Any]:
    """configs/k8s.yaml compiled by ZenML on a Kubernetes stack that scripts/register_k8s_stack.sh registered in an
    isolated store (no cluster is contacted), with the step Jobs and the CronJob the orchestrator would submit."""
    state = tmp_path_factory.mktemp("zenml_k8s_state")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ZENML_"))},
        "ZENML_CONFIG_PATH": str(state / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "PYTHON": str(BIN / "python"),
        "PYTHONPATH": str(REPO_ROOT),
        "KUBE_CONTEXT": "facegen-prod",
        "FACEGEN_REGISTRY": "registry.example.com/facegen",
        "FACEGEN_ARTIFACT_STORE": "s3://facegen-artifacts/zenml",
        "FACEGEN_S3_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "registration-only",
        "AWS_SECRET_ACCESS_KEY": "registration-only",
        "FACEGEN_MLFLOW_PASSWORD": "registration-only",
        "FACEGEN_IMAGE": "registry.example.com/facegen/facegen:0.1.0",
        "FACEGEN_TRAINING_DATA": "s3://facegen-data/faces/",
    }
    registered = subprocess.run(
        ["bash", "scripts/register_k8s_stack.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert registered.returncode == 0, registered.stdout[-3000:] + registered.stderr[-3000:]
    env["ZENML_ACTIVE_STACK_ID"] = registered.stdout.strip().splitlines()[-1]
    result = subprocess.run(
        [str(BIN / "python"), "-c", COMPILE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("COMPILED ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    return _drop_nulls(json.loads(lines[-1].removeprefix("COMPILED ")))


def _drop_nulls(value: Any) -> Any:
    """The object as the API server stores it: the Python client's unset fields (None) are not sent."""
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


def test_register_script_builds_the_kubernetes_stack(compiled: dict[str, Any]) -> None:
    assert compiled["orchestrator"] == {"flavor": "kubernetes", "namespace": NAMESPACE, "context": "facegen-prod"}
    assert compiled["artifact_store"] == "s3://facegen-artifacts/zenml"
    assert compiled["image"] == "registry.example.com/facegen/facegen:0.1.0"  # ${FACEGEN_IMAGE} substituted
    assert compiled["stack"] == {
        "orchestrator": ["kubernetes"],
        "artifact_store": ["s3"],
        "container_registry": ["default"],
        "image_builder": ["local"],
        "experiment_tracker": ["mlflow"],
        "model_registry": ["mlflow"],
    }


def test_every_step_job_zenml_would_submit_validates(compiled: dict[str, Any]) -> None:
    # configs/k8s.yaml sizes every step of the pipeline explicitly: a new step needs its entry there too.
    assert set(compiled["steps"]) == set(_run_config()["steps"])
    for job in compiled["steps"].values():
        # ZenML posts Jobs with create_namespaced_job, which implies apiVersion/kind; the schema wants them written.
        validate({**job, "apiVersion": job.get("apiVersion") or "batch/v1", "kind": job.get("kind") or "Job"})
    validate(compiled["cron_job"])


def test_train_gan_gets_the_gpu_pool_and_is_never_evicted(compiled: dict[str, Any], rendered) -> None:
    pod = compiled["steps"]["train_gan"]["spec"]["template"]
    spec, (container,) = pod["spec"], pod["spec"]["containers"]
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1" == resources["requests"]["nvidia.com/gpu"]
    assert spec["nodeSelector"] == {"facegen.io/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["affinity"]["nodeAffinity"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (shm,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
    assert pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert spec["priorityClassName"] == "facegen-training"
    base = rendered["base"]
    assert _one(base, "PriorityClass", "facegen-training")["preemptionPolicy"] == "Never"
    training_pdb = _one(base, "PodDisruptionBudget", "facegen-training")["spec"]
    assert training_pdb["maxUnavailable"] == 0
    assert training_pdb["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert spec["serviceAccountName"] == "facegen-steps"
    _one(base, "ServiceAccount", "facegen-steps")


def test_every_other_step_runs_on_cpu_nodes_with_modest_requests(compiled: dict[str, Any]) -> None:
    for name, job in compiled["steps"].items():
        if name == "train_gan":
            continue
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        resources = container["resources"]
        assert "nvidia.com/gpu" not in resources.get("limits", {}) | resources["requests"], name
        assert spec["nodeSelector"] == {"facegen.io/pool": "cpu"}, name
        assert not spec.get("tolerations"), name
        assert _quantity(resources["requests"]["cpu"]) <= 4, name
        assert _quantity(resources["requests"]["memory"]) <= _quantity("8Gi"), name
        assert _quantity(resources["limits"]["memory"]) >= _quantity(resources["requests"]["memory"]), name


#: Steps that sign what they write (C2PA manifests on exported faces and saved grids); they fail closed without keys.
SIGNING_STEPS = {"train_gan", "evaluate", "evaluate_fairness", "export_human_eval"}


def test_the_steps_that_sign_faces_mount_the_provenance_secret_and_no_other_step_does(compiled: dict[str, Any]) -> None:
    signers = ("facegen.provenance", "facegen.train.launcher")  # the launcher's training job signs its epoch grids
    signing_modules = {
        path.stem for path in (REPO_ROOT / "steps").glob("*.py") if any(name in path.read_text() for name in signers)
    }
    assert signing_modules == SIGNING_STEPS  # a new signing step needs the Secret too
    home = _run_config()["settings"]["docker"]["environment"]["FACEGEN_HOME"]
    for name, job in compiled["steps"].items():
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", []) if m["name"] in secrets}
        if name not in SIGNING_STEPS:
            assert "facegen-provenance" not in secrets.values(), name  # the signing key stays where it is needed
            continue
        mount = mounts[f"{home}/provenance"]  # ProvenanceConfig's default folder: $FACEGEN_HOME/provenance
        assert secrets[mount["name"]] == "facegen-provenance" and mount["readOnly"], name


def test_the_schedule_is_a_weekly_cronjob_that_never_overlaps(compiled: dict[str, Any], rendered) -> None:
    cron = compiled["cron_job"]
    assert compiled["schedule"] == cron["spec"]["schedule"] == "0 3 * * 1"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] > 0
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0  # a hung run ends, so the next Monday can start
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == "facegen-zenml"
    _one(rendered["base"], "RoleBinding", "facegen-zenml-orchestrator")
    assert pod["nodeSelector"] == {"facegen.io/pool": "cpu"}
    print(
        f"\nCronJob: schedule={cron['spec']['schedule']!r} concurrencyPolicy={cron['spec']['concurrencyPolicy']} "
        f"startingDeadlineSeconds={cron['spec']['startingDeadlineSeconds']} "
        f"activeDeadlineSeconds={job['activeDeadlineSeconds']}"
    )


def test_the_pipelines_mlflow_user_lives_in_a_zenml_secret_the_tracker_only_references(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ZENML_", "FACEGEN_MLFLOW_"))},
        "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "FACEGEN_MLFLOW_USERNAME": "facegen-pipeline",
        "FACEGEN_MLFLOW_PASSWORD": "s3cret-from-k8s",
    }
    register = [
        str(BIN / "python"),
        "scripts/zenml_stack.py",
        "--stack",
        "auth-test",
        "--no-activate",
        "--tracking-uri",
        "http://mlflow.facegen.svc.cluster.local:5000",
        "--mlflow-secret",
        "facegen-mlflow",
    ]
    result = subprocess.run(register, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    inspect = (
        "from zenml.client import Client; c = Client(); import json; "
        "t = c.get_stack_component('experiment_tracker', 'facegen-mlflow'); "
        "s = c.get_secret('facegen-mlflow'); "
        "print('RESULT', json.dumps([t.configuration, s.secret_values]))"
    )
    shown = subprocess.run(
        [str(BIN / "python"), "-c", inspect], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    line = next(line for line in shown.stdout.splitlines() if line.startswith("RESULT "))
    configuration, secret = json.loads(line.removeprefix("RESULT "))
    assert configuration["tracking_username"] == "{{facegen-mlflow.username}}"
    assert configuration["tracking_password"] == "{{facegen-mlflow.password}}"
    assert secret == {"username": "facegen-pipeline", "password": "s3cret-from-k8s"}
