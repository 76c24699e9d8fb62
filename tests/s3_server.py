"""S3 on 127.0.0.1 for tests: moto's S3 server mode, and an MLflow server whose artifacts go to it.

A pytest plugin (tests/conftest.py loads it). Fixtures:
- ``s3_server`` (session): starts ``moto_server`` on a free loopback port and yields its endpoint
  ``http://127.0.0.1:PORT``; stops it at the end. Buckets and objects live in that process's memory.
- ``s3_env`` (function): points boto3 at that endpoint for one test (``AWS_ENDPOINT_URL``, dummy keys, region; no
  ``~/.aws`` profile) and yields a boto3 S3 client; restores the environment afterwards.
Helpers: :func:`start_moto_server` and :func:`start_mlflow_server_on_s3` (context managers), :data:`CREDENTIALS`,
:func:`aws_env`, :func:`s3_client`, :func:`list_keys`.
Nothing here reaches beyond the loopback interface.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local_servers import HOST, popen_logged, start_on_free_port, stop, wait_http
from tests.mlflow_server import running_mlflow_server

STARTUP_TIMEOUT_S = 30.0
REGION = "us-east-1"
#: Dummy keys moto accepts. Real deployments pass keys through a ZenML secret or a Kubernetes Secret, never a file.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "facegen-test-key", "AWS_SECRET_ACCESS_KEY": "facegen-test-secret"}


def aws_env(endpoint: str, tmp_dir: Path | None = None, *, credentials: bool = True) -> dict[str, str]:
    """Environment variables that point boto3 / s3fs / MLflow at ``endpoint`` and away from any ``~/.aws`` files."""
    empty = str((tmp_dir or Path("/nonexistent")) / "aws-none")
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": empty,
        "AWS_SHARED_CREDENTIALS_FILE": empty,
        "AWS_EC2_METADATA_DISABLED": "true",  # never probe an instance-metadata address for credentials
    }
    if credentials:
        env |= CREDENTIALS
    return env


#: Variables removed from a child's environment before :func:`aws_env` is applied.
AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "FACEGEN_S3_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
)


def s3_client(endpoint: str, **config: Any) -> Any:
    """A boto3 S3 client for ``endpoint`` with the dummy keys (``config``: botocore Config arguments)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(**config) if config else None,
    )


def list_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key under ``prefix`` in ``bucket`` (paginated), sorted."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


@contextlib.contextmanager
def start_moto_server(log_dir: Path) -> Iterator[str]:
    """Run ``moto_server`` on 127.0.0.1 (a free port) and yield its endpoint; stop it on exit."""
    log_path = log_dir / "moto_server.log"
    moto_server = Path(sys.executable).with_name("moto_server")

    def launch(port: int) -> subprocess.Popen:
        return popen_logged([str(moto_server), "-H", HOST, "-p", str(port)], log_path, dict(os.environ))

    def wait(port: int, process: subprocess.Popen) -> None:  # any HTTP answer from its API means it is up
        wait_http(f"http://{HOST}:{port}/moto-api/", process, log_path, STARTUP_TIMEOUT_S, any_status=True)

    port, process = start_on_free_port(launch, wait, log_path)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        stop(process)


@contextlib.contextmanager
def start_mlflow_server_on_s3(root: Path, endpoint: str, artifacts_destination: str) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1: SQLite backend under ``root``, artifacts proxied to the S3 URI
    ``artifacts_destination`` on ``endpoint`` (the server gets ``MLFLOW_S3_ENDPOINT_URL`` and the keys; its clients
    need no S3 settings). Yields ``http://127.0.0.1:PORT``."""
    env = {key: value for key, value in os.environ.items() if key not in AWS_VARIABLES} | aws_env(endpoint, root)
    with running_mlflow_server(root, env, artifacts_destination=artifacts_destination) as uri:
        yield uri


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint ``http://127.0.0.1:PORT`` of a moto S3 server shared by the test session."""
    with start_moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """boto3 in this process pointed at ``s3_server`` for one test; yields an S3 client for it."""
    from facegen.data import sources

    for key in AWS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in aws_env(s3_server, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sources, "_s3_clients", {})  # facegen's shared clients are rebuilt for this environment
    yield s3_client(s3_server)
