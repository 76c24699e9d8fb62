#!/usr/bin/env bash
# Register facegen's Kubernetes stack in the ZenML server this client is logged in to (`zenml login URL` first):
#   orchestrator  facegen-k8s            ZenML's Kubernetes orchestrator (namespace $FACEGEN_NAMESPACE)
#   artifacts     facegen-s3             ZenML's S3 artifact store; keys in the ZenML secret $FACEGEN_S3_SECRET
#   tracking      facegen-mlflow         MLflow experiment tracker -> the in-cluster MLflow server
#   registry      facegen-mlflow-registry  MLflow model registry
#   images        facegen-registry + facegen-image-builder (local Docker, or kaniko inside the cluster)
# Idempotent: re-running updates the components in place. Nothing secret is written to a file or a component's
# configuration: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and FACEGEN_MLFLOW_PASSWORD (when exported) go into ZenML
# secrets only; the tracker references the MLflow one ({{facegen-mlflow.username}}).
#
#   export KUBE_CONTEXT=prod-cluster FACEGEN_REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com/facegen
#   export FACEGEN_ARTIFACT_STORE=s3://facegen-artifacts/zenml AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
#   scripts/register_k8s_stack.sh            # then: zenml stack set facegen-k8s
#
# Variables (defaults in brackets): KUBE_CONTEXT (required unless FACEGEN_INCLUSTER=1), FACEGEN_REGISTRY (required),
# FACEGEN_REGISTRY_FLAVOR [default; aws/gcp/azure for ECR/GAR/ACR], FACEGEN_ARTIFACT_STORE [s3://facegen-artifacts/zenml],
# FACEGEN_S3_ENDPOINT_URL [unset: AWS S3; set for MinIO], FACEGEN_S3_REGION [$AWS_DEFAULT_REGION],
# FACEGEN_S3_SECRET [facegen-s3], FACEGEN_NAMESPACE [facegen],
# FACEGEN_MLFLOW_URI [http://mlflow.facegen.svc.cluster.local:5000], FACEGEN_IMAGE_BUILDER [local],
# FACEGEN_STACK [facegen-k8s], PYTHON [python], FACEGEN_ORCHESTRATOR [kubernetes; scripts/register_kubeflow_stack.sh sets
# kubeflow, with FACEGEN_KFP_HOST / KFP_NAMESPACE / KFP_USER_NAMESPACE], FACEGEN_MLFLOW_SECRET [facegen-mlflow]: ZenML secret with the
# pipeline's MLflow user, created/updated from FACEGEN_MLFLOW_USERNAME [facegen-pipeline] / FACEGEN_MLFLOW_PASSWORD
# (the mlflow-pipeline Kubernetes Secret's password) when set, else it must exist.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${FACEGEN_REGISTRY:?set FACEGEN_REGISTRY to the container registry the step images are pushed to}"
ORCHESTRATOR="${FACEGEN_ORCHESTRATOR:-kubernetes}"
if [[ "$ORCHESTRATOR" == kubernetes && "${FACEGEN_INCLUSTER:-0}" != 1 ]]; then
  : "${KUBE_CONTEXT:?set KUBE_CONTEXT to the kubeconfig context of the cluster (or FACEGEN_INCLUSTER=1)}"
fi
PYTHON="${PYTHON:-python}"
if [[ -n "${FACEGEN_MLFLOW_PASSWORD:-}" ]]; then export FACEGEN_MLFLOW_USERNAME="${FACEGEN_MLFLOW_USERNAME:-facegen-pipeline}"; fi
STACK="${FACEGEN_STACK:-facegen-k8s}"

store_type="$("$PYTHON" -c 'from zenml.client import Client; print(Client().zen_store.type.value)' 2>/dev/null | tail -1)"
if [[ "$store_type" != "rest" ]]; then
  echo "warning: this ZenML client uses a local store ('$store_type'); pods in the cluster cannot reach it." >&2
  echo "         Deploy a ZenML server and 'zenml login <url>' before running pipelines on this stack." >&2
fi

args=(
  --stack "$STACK"
  --tracking-uri "${FACEGEN_MLFLOW_URI:-http://mlflow.facegen.svc.cluster.local:5000}"
  --mlflow-secret "${FACEGEN_MLFLOW_SECRET:-facegen-mlflow}"   # MLflow's basic-auth user facegen-pipeline
  --artifact-store "${FACEGEN_ARTIFACT_STORE:-s3://facegen-artifacts/zenml}"
  --s3-secret "${FACEGEN_S3_SECRET:-facegen-s3}"
  --orchestrator "$ORCHESTRATOR"
  --container-registry "$FACEGEN_REGISTRY"
  --container-registry-flavor "${FACEGEN_REGISTRY_FLAVOR:-default}"
  --image-builder "${FACEGEN_IMAGE_BUILDER:-local}"
  --no-activate
)
if [[ -n "${FACEGEN_S3_ENDPOINT_URL:-}" ]]; then args+=(--s3-endpoint-url "$FACEGEN_S3_ENDPOINT_URL"); fi
region="${FACEGEN_S3_REGION:-${AWS_DEFAULT_REGION:-}}"
if [[ -n "$region" ]]; then args+=(--s3-region "$region"); fi
if [[ "$ORCHESTRATOR" == kubeflow ]]; then
  args+=(--kubeflow-namespace "${KFP_NAMESPACE:-kubeflow}")
  if [[ -n "${FACEGEN_KFP_HOST:-}" ]]; then args+=(--kubeflow-host "$FACEGEN_KFP_HOST"); fi
  if [[ -n "${KUBE_CONTEXT:-}" ]]; then args+=(--kubernetes-context "$KUBE_CONTEXT"); fi
  if [[ -n "${KFP_USER_NAMESPACE:-}" ]]; then args+=(--kubeflow-user-namespace "$KFP_USER_NAMESPACE"); fi
else
  args+=(--kubernetes-namespace "${FACEGEN_NAMESPACE:-facegen}" --service-account facegen-zenml)
  if [[ "${FACEGEN_INCLUSTER:-0}" == 1 ]]; then args+=(--incluster); else args+=(--kubernetes-context "$KUBE_CONTEXT"); fi
fi

"$PYTHON" scripts/zenml_stack.py "${args[@]}"
