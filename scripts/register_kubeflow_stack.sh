#!/usr/bin/env bash
# Register facegen's Kubeflow Pipelines stack: the Kubernetes stack's artifact store, MLflow tracker and registry,
# container registry and image builder (scripts/register_k8s_stack.sh does the work), with the orchestrator
#   facegen-kubeflow   flavors/kubeflow_orchestrator.py: ZenML's Kubeflow orchestrator + the pod settings and
#                      retries KFP 2 would drop (docs/operations.md "Kubeflow Pipelines")
# Runs with .venv-kubeflow (make .venv-kubeflow/.installed: kfp needs protobuf 6, .venv has 7).
#
#   export FACEGEN_KFP_HOST=https://kubeflow.example.com/pipeline    # or KUBE_CONTEXT=... (KFP via the API proxy)
#   export FACEGEN_REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com/facegen AWS_ACCESS_KEY_ID=... ...
#   scripts/register_kubeflow_stack.sh       # then: zenml stack set facegen-kubeflow
#
# Variables: those of register_k8s_stack.sh, plus FACEGEN_KFP_HOST or KUBE_CONTEXT (one), KFP_NAMESPACE [kubeflow],
# KFP_USER_NAMESPACE [unset; a multi-user Kubeflow's profile namespace]; FACEGEN_STACK [facegen-kubeflow],
# PYTHON [.venv-kubeflow/bin/python].
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FACEGEN_KFP_HOST:=}"
if [[ -z "$FACEGEN_KFP_HOST" && -z "${KUBE_CONTEXT:-}" ]]; then
  echo "set FACEGEN_KFP_HOST to the Kubeflow Pipelines API (or KUBE_CONTEXT to reach it through the cluster)" >&2
  exit 2
fi
export FACEGEN_ORCHESTRATOR=kubeflow FACEGEN_KFP_HOST
export FACEGEN_STACK="${FACEGEN_STACK:-facegen-kubeflow}" PYTHON="${PYTHON:-.venv-kubeflow/bin/python}"
exec scripts/register_k8s_stack.sh
