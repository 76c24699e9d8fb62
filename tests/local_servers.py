"""Servers the tests (and benchmarks) run as real subprocesses on 127.0.0.1: launch on a free port, wait until up, stop.

A port found free and released can be taken by another process before the server binds it; the server then exits
with EADDRINUSE and :func:`start_on_free_port` starts it again on another port (``PORT_TRIES`` launches at most).
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

HOST = "127.0.0.1"
PORT_TRIES = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def log_tail(log_path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no server log: {error})"


def wait_http(
    url: str, process: subprocess.Popen, log_path: Path, timeout_s: float, *, any_status: bool = False
) -> None:
    """Return once GET ``url`` answers 200 (``any_status``: any HTTP answer); RuntimeError with the log's tail when
    the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with code {process.returncode}; log:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if any_status:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up after {timeout_s:.0f} s; log:\n{log_tail(log_path)}")


def stop(process: subprocess.Popen) -> None:
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


def start_on_free_port(
    launch: Callable[[int], subprocess.Popen], wait: Callable[[int, subprocess.Popen], None], log_path: Path
) -> tuple[int, subprocess.Popen]:
    """``launch(port)`` a server writing to ``log_path`` and ``wait`` until it is up; relaunched on another free port
    when it died because its port was taken meanwhile ("address already in use" in its log). Returns (port, process)."""
    for attempt in itertools.count(1):
        port = free_port()
        process = launch(port)
        try:
            wait(port, process)
            return port, process
        except RuntimeError:
            stop(process)
            if attempt == PORT_TRIES or "address already in use" not in log_tail(log_path).lower():
                raise


def popen_logged(command: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """``command`` in its own process group (so its workers stop with it), stdout and stderr into ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@contextlib.contextmanager
def running_facegen_serve(
    config: Path, env: dict[str, str], log_path: Path, timeout_s: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``facegen serve --config config`` (a real uvicorn process) until /readyz says 200; yields (base URL, process)
    and stops it afterwards (a test may kill it itself)."""

    def launch(port: int) -> subprocess.Popen:
        command = [sys.executable, "-m", "facegen.cli", "serve", "--config", str(config), "--host", HOST]
        return popen_logged([*command, "--port", str(port), "--log-level", "warning"], log_path, env)

    port, process = start_on_free_port(
        launch, lambda port, process: wait_http(f"http://{HOST}:{port}/readyz", process, log_path, timeout_s), log_path
    )
    try:
        yield f"http://{HOST}:{port}", process
    finally:
        stop(process)
