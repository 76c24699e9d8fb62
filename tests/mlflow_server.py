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
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mlflow import MlflowClient

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 90.0
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}

# The test process talks to the server too: no telemetry look-ups from the client either.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


#: Launches of a subprocess server, each on a new free port: a port found free and released can be taken by
#: another process before the server binds it; the server then exits with EADDRINUSE and is started again.
PORT_TRIES = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_on_free_port(
    launch: Callable[[int], subprocess.Popen], wait: Callable[[int, subprocess.Popen], None], log_path: Path
) -> tuple[int, subprocess.Popen]:
    """``launch(port)`` a server writing to ``log_path`` and ``wait`` until it is up; relaunched on another free port
    when it died because its port was taken meanwhile ("address already in use" in its log). Returns (port, process)."""
    for attempt in itertools.count(1):
        port = _free_port()
        process = launch(port)
        try:
            wait(port, process)
            return port, process
        except RuntimeError:
            _stop(process)
            if attempt == PORT_TRIES or "address already in use" not in _log_tail(log_path).lower():
                raise


def _log_tail(log_path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no server log: {error})"


def _wait_healthy(uri: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with code {process.returncode} before becoming healthy; log:\n"
                + _log_tail(log_path)
            )
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"mlflow server at {uri} not healthy after {STARTUP_TIMEOUT_S:.0f} s; log:\n" + _log_tail(log_path)
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (server + workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


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
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            artifacts_destination or str(root / "artifacts"),
            *extra_args,
        ]
        with log_path.open("wb") as log:
            return subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so the workers stop with it
            )

    port, process = start_on_free_port(
        launch, lambda port, process: _wait_healthy(f"http://{HOST}:{port}", process, log_path), log_path
    )
    try:
        yield f"http://{HOST}:{port}"
    finally:
        _stop(process)


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
