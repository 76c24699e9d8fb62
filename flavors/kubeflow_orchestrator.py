"""ZenML's Kubeflow orchestrator, with the pod settings and retries it drops on Kubeflow Pipelines 2 put in the spec.

ZenML 0.98's Kubeflow orchestrator keeps only the accelerator of a step's ``pod_settings`` in the KFP 2 spec and
warns that the rest is ignored, so a GPU step would land on a tainted pool it cannot tolerate, without /dev/shm or its
Secrets. This subclass writes them into each task with kfp-kubernetes (node selectors, tolerations, node affinity,
emptyDir and Secret volumes, env from Secret and ConfigMap keys, pod labels and annotations), the requests and limits
with kfp's own setters, and the step's ZenML ``retry`` as the task's KFP retry policy. A pod setting KFP cannot carry
is an error that names it, not a warning. KFP caching stays off, as ZenML sets it: ZenML caches inside the step pod,
and a KFP cache hit would skip the container, so ZenML would never record the step or find its outputs.

Register: ``zenml orchestrator flavor register flavors.kubeflow_orchestrator.FacegenKubeflowOrchestratorFlavor``
(scripts/zenml_stack.py --orchestrator kubeflow does it); settings key ``orchestrator.facegen_kubeflow``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Type

from kfp import dsl, kubernetes
from pydantic import model_validator
from zenml.config.retry_config import StepRetryConfig
from zenml.integrations.kubeflow.flavors import KubeflowOrchestratorFlavor
from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import KubeflowOrchestratorSettings
from zenml.integrations.kubeflow.orchestrators import KubeflowOrchestrator
from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings

if TYPE_CHECKING:
    from zenml.config.resource_settings import ResourceSettings
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse
    from zenml.orchestrators.base_orchestrator import SubmissionResult
    from zenml.stack import Stack

FLAVOR = "facegen_kubeflow"
#: KubernetesPodSettings fields this orchestrator writes into a KFP task; any other set field is an error.
CARRIED = {
    "node_selectors",
    "tolerations",
    "affinity",
    "resources",
    "volumes",
    "volume_mounts",
    "env",
    "labels",
    "annotations",
}
GPU_RESOURCE = "nvidia.com/gpu"


class FacegenKubeflowOrchestratorSettings(KubeflowOrchestratorSettings):
    """Kubeflow settings whose ``pod_settings`` survive validation.

    ZenML 0.98's validator (same name, replaced here) rebuilds ``pod_settings`` from the legacy ``node_selectors`` /
    ``node_affinity`` keys on every validation, so pod settings given in a run config arrive empty.
    """

    @model_validator(mode="before")
    @classmethod
    def _validate_and_migrate_pod_settings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            legacy = sorted({"node_selectors", "node_affinity"} & data.keys())
            if legacy:
                raise ValueError(f"Kubeflow settings {legacy}: give them in pod_settings")
            if (data.get("client_username") is None) != (data.get("client_password") is None):
                raise ValueError("`client_username` and `client_password` both need to be set together.")
        return data


def _unsupported(pod: KubernetesPodSettings) -> list[str]:
    return sorted(pod.model_fields_set - CARRIED)


def apply_resources(task: dsl.PipelineTask, resources: Dict[str, Dict[str, str]]) -> None:
    """Requests and limits; ``nvidia.com/gpu`` becomes the task's accelerator (KFP sets its request = limit)."""
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    unknown = sorted((set(requests) | set(limits)) - {"cpu", "memory", GPU_RESOURCE})
    if unknown:
        raise ValueError(f"KFP tasks take cpu, memory and {GPU_RESOURCE} resources, not {unknown}")
    if "cpu" in requests:
        task.set_cpu_request(str(requests["cpu"]))
    if "memory" in requests:
        task.set_memory_request(str(requests["memory"]))
    if "cpu" in limits:
        task.set_cpu_limit(str(limits["cpu"]))
    if "memory" in limits:
        task.set_memory_limit(str(limits["memory"]))
    gpus = limits.get(GPU_RESOURCE, requests.get(GPU_RESOURCE))
    if gpus is not None:
        task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(str(gpus))


def apply_volumes(task: dsl.PipelineTask, volumes: List[Dict[str, Any]], mounts: List[Dict[str, Any]]) -> None:
    """emptyDir and Secret volumes at their mount paths (KFP mounts Secrets read-only); others are an error."""
    by_name = {volume["name"]: volume for volume in volumes}
    for mount in mounts:
        volume = by_name.pop(mount["name"], None)
        if volume is None:
            raise ValueError(f"volume mount {mount['name']!r} names no volume")
        if "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            kubernetes.empty_dir_mount(
                task, mount["name"], mount["mountPath"], medium=empty.get("medium"), size_limit=empty.get("sizeLimit")
            )
        elif "secret" in volume:
            secret = volume["secret"]
            kubernetes.use_secret_as_volume(
                task, secret["secretName"], mount["mountPath"], optional=bool(secret.get("optional", False))
            )
        else:
            raise ValueError(f"volume {mount['name']!r}: KFP tasks here mount emptyDir or secret volumes only")
    if by_name:
        raise ValueError(f"volumes without a mount: {sorted(by_name)}")


def apply_env(task: dsl.PipelineTask, env: List[Dict[str, Any]]) -> None:
    """Plain values, and values from a Secret's or ConfigMap's key (KFP 2 has no envFrom: name each key)."""
    for variable in env:
        source = variable.get("valueFrom")
        if source is None:
            task.set_env_variable(variable["name"], str(variable["value"]))
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            kubernetes.use_secret_as_env(task, ref["name"], {ref["key"]: variable["name"]}, bool(ref.get("optional")))
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            kubernetes.use_config_map_as_env(
                task, ref["name"], {ref["key"]: variable["name"]}, bool(ref.get("optional"))
            )
        else:
            raise ValueError(f"env {variable['name']!r}: valueFrom takes secretKeyRef or configMapKeyRef here")


def apply_pod_settings(task: dsl.PipelineTask, pod: KubernetesPodSettings) -> None:
    """Write a step's pod settings (fields in CARRIED) into its KFP task; raises ValueError on what KFP cannot carry."""
    for key, value in pod.node_selectors.items():
        kubernetes.add_node_selector(task, key, value)
    for toleration in pod.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.get("key"),
            operator=toleration.get("operator"),
            value=toleration.get("value"),
            effect=toleration.get("effect"),
            toleration_seconds=toleration.get("tolerationSeconds"),
        )
    node_affinity = pod.affinity.get("nodeAffinity")
    if set(pod.affinity) - {"nodeAffinity"}:
        raise ValueError("KFP tasks take node affinity only (no pod affinity)")
    if node_affinity:
        kubernetes.add_node_affinity_json(task, node_affinity)
    apply_resources(task, pod.resources)
    apply_volumes(task, pod.volumes, pod.volume_mounts)
    apply_env(task, pod.env)
    for key, value in pod.labels.items():
        kubernetes.add_pod_label(task, key, value)
    for key, value in pod.annotations.items():
        kubernetes.add_pod_annotation(task, key, value)


def apply_retry(task: dsl.PipelineTask, retry: Optional[StepRetryConfig]) -> None:
    """ZenML's step retry (max_retries, delay s, backoff factor) as the KFP task's retry policy."""
    if retry and retry.max_retries:
        task.set_retry(
            retry.max_retries, backoff_duration=f"{retry.delay}s", backoff_factor=float(retry.backoff) or None
        )


class FacegenKubeflowOrchestrator(KubeflowOrchestrator):
    """KubeflowOrchestrator that carries each step's pod settings and retry into its KFP task (module doc)."""

    _snapshot: Optional["PipelineSnapshotResponse"] = None

    @property
    def settings_class(self) -> Type[FacegenKubeflowOrchestratorSettings]:
        return FacegenKubeflowOrchestratorSettings

    _step_of_component: Dict[str, str] = {}

    def submit_pipeline(
        self,
        snapshot: "PipelineSnapshotResponse",
        stack: "Stack",
        base_environment: Dict[str, str],
        step_environments: Dict[str, Dict[str, str]],
        placeholder_run: Optional["PipelineRunResponse"] = None,
    ) -> Optional["SubmissionResult"]:
        for step_name, step in snapshot.step_configurations.items():  # fail before compiling, naming the step
            pod = self._pod_settings(step)
            if pod and _unsupported(pod):
                raise ValueError(f"step {step_name!r}: pod settings KFP 2 cannot carry: {_unsupported(pod)}")
        self._snapshot, self._step_of_component = snapshot, {}
        return super().submit_pipeline(snapshot, stack, base_environment, step_environments, placeholder_run)

    def _pod_settings(self, step: Any) -> Optional[KubernetesPodSettings]:
        settings = self.get_settings(step)
        assert isinstance(settings, FacegenKubeflowOrchestratorSettings)
        return settings.pod_settings

    def _create_dynamic_component(
        self, image: str, command: List[str], arguments: List[str], component_name: str
    ) -> Any:
        """The parent's component, its KFP name (``train-gan``) remembered as the step's (``train_gan``)."""
        component = super()._create_dynamic_component(image, command, arguments, component_name)
        self._step_of_component[component.component_spec.name] = component_name
        return component

    def _configure_container_resources(
        self,
        dynamic_component: dsl.PipelineTask,
        resource_settings: "ResourceSettings",
        node_selector_constraint: Optional[Tuple[str, str]] = None,
    ) -> dsl.PipelineTask:
        """The parent's ResourceSettings handling, then the step's pod settings and retry (module doc)."""
        task = super()._configure_container_resources(dynamic_component, resource_settings, node_selector_constraint)
        assert self._snapshot is not None
        step_name = self._step_of_component[task.component_spec.name]
        step = self._snapshot.step_configurations[step_name]
        pod = self._pod_settings(step)
        if pod:
            apply_pod_settings(task, pod)
        apply_retry(task, step.config.retry)
        return task


class FacegenKubeflowOrchestratorFlavor(KubeflowOrchestratorFlavor):
    """Flavor ``facegen_kubeflow``: ZenML's Kubeflow flavor with FacegenKubeflowOrchestrator as implementation."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def settings_class(self) -> Type[FacegenKubeflowOrchestratorSettings]:
        return FacegenKubeflowOrchestratorSettings

    @property
    def implementation_class(self) -> Type[FacegenKubeflowOrchestrator]:
        return FacegenKubeflowOrchestrator
