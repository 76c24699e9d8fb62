"""pytest plugin: a real MLflow tracking server on 127.0.0.1, one per test session.

Load it with ``pytest_plugins = ["tests.mlflow_server"]`` (or ``-p tests.mlflow_server``). Fixtures:
- ``mlflow_server`` (session): starts ``mlflow server`` (SQLite backend, proxied artifacts in a temp directory, one
  worker, no job execution) on a free loopback port, yields its URI ``http://127.0.0.1:PORT``, and stops the whole
  process group at the end;
- ``mlflow_tracking`` (function): points the MLflow client (global URI and ``MLFLOW_TRACKING_URI``) at that server
  for one test and yields an ``MlflowClient`` bound to it; restores the previous URI afterwards.
``use_tracking_uri(uri)`` is the same as a context manager, for module- or session-scoped fixtures.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.local_servers import HOST, popen_logged, start_on_free_port, stop, wait_http

if TYPE_CHECKING:
    from mlflow import MlflowClient

STARTUP_TIMEOUT_S = 90.0
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}

# The test process talks to the server too: no telemetry look-ups from the client either.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@contextlib.contextmanager
def running_mlflow_server(
    root: Path, env: dict[str, str], extra_args: tuple[str, ...] = (), artifacts_destination: str | None = None
) -> Iterator[str]:
    """``mlflow server`` (SQLite backend under ``root``, artifacts proxied to ``artifacts_destination`` — default
    ``root/artifacts`` —, ``env`` + :data:`SERVER_ENV`, then ``extra_args``) on a free loopback port; yields its URI
    and stops its process group afterwards."""
    log_path = root / "server.log"
    env = {**env, **SERVER_ENV}
    env.pop("MLFLOW_TRACKING_URI", None)

    def launch(port: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1"]
        store = ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
        artifacts = ["--artifacts-destination", artifacts_destination or str(root / "artifacts")]
        return popen_logged([*command, *store, *artifacts, *extra_args], log_path, env, cwd=root)

    def wait(port: int, process: subprocess.Popen) -> None:
        wait_http(f"http://{HOST}:{port}/health", process, log_path, STARTUP_TIMEOUT_S)

    port, process = start_on_free_port(launch, wait, log_path)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real MLflow server on 127.0.0.1 (SQLite + local artifacts in a session temp dir)."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), dict(os.environ)) as uri:
        yield uri


@contextlib.contextmanager
def use_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global client state (URI and ``MLFLOW_TRACKING_URI``) at ``uri``, then restore it exactly."""
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils

    previous = tracking_utils._tracking_uri  # None when unset: restore exactly that, not the resolved default
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)  # the registry URI follows the tracking URI when not set itself
        try:
            yield
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(previous)  # (None also unsets the env var; the patch context restores it)


@pytest.fixture
def mlflow_tracking(mlflow_server: str) -> Iterator[MlflowClient]:
    """The MLflow client pointed at ``mlflow_server`` for one test (global URI and env), then restored."""
    from mlflow import MlflowClient

    with use_tracking_uri(mlflow_server):
        yield MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
