"""Shared pieces of the service tests: two tiny real generators registered on the real MLflow server (or any bundle
as a champion), settings, the exact face a (bundle, seed, truncation, labels) must give, and a real uvicorn server
on 127.0.0.1 in a thread.

Import the fixtures into a test module (``from tests.serve_fixtures import tiny_generators``) to use them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from facegen.gates import GateDecision
from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.registry import build_generator
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_registry import apply_gate, approve_version, register_version
from facegen.serve.inference import render_faces
from facegen.serve.settings import ServeSettings, load_settings
from tests.mlflow_server import use_tracking_uri
from tests.provenance_fixtures import marking_config

MODEL_CONFIG = {"resolution": 16, "width": 8}
RESOLUTION = MODEL_CONFIG["resolution"]
TEST_SIZES = (16, 32, 64)


@dataclass(frozen=True)
class TinyGenerators:
    """Two tiny DCGAN generators with different weights, logged on the server (not yet registered)."""

    bundles: tuple[Path, Path]
    model_uris: tuple[str, str]


@pytest.fixture(scope="session")
def tiny_generators(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> TinyGenerators:
    bundles, uris = [], []
    with use_tracking_uri(mlflow_server), mlflow.start_run():
        for weights_seed in (1, 2):
            torch.manual_seed(weights_seed)
            generator = build_generator("dcgan", MODEL_CONFIG)
            bundle = save_generator_bundle(
                tmp_path_factory.mktemp(f"bundle{weights_seed}"), "dcgan", MODEL_CONFIG, generator
            )
            bundles.append(bundle)
            uris.append(log_generator_model(bundle, artifact_name=f"generator{weights_seed}").model_uri)
    return TinyGenerators(tuple(bundles), tuple(uris))  # type: ignore[arg-type]


#: The gate reasons a version registered as failed gets (``register_model(failed=...)``).
FAILED_GATE_REASONS = ["fid 80 is above the limit 50"]


def register_model(
    server_uri: str,
    tiny: TinyGenerators,
    *,
    champion: str | None = "1",
    prefix: str = "serve",
    failed: tuple[str, ...] = (),
) -> str:
    """A fresh registered model with version 1 and 2 (= tiny bundle 1 and 2), gated as passed except the versions in
    ``failed``; returns its name."""
    client = MlflowClient(tracking_uri=server_uri, registry_uri=server_uri)
    name = f"facegen-{prefix}-{uuid.uuid4().hex[:8]}"
    for uri in tiny.model_uris:
        version = register_version(uri, name=name, metrics={"fid": 10.0}, tags={}, client=client)
        passed = version.version not in failed
        apply_gate(client, version, GateDecision(passed, [] if passed else FAILED_GATE_REASONS))
    if champion is not None:
        approve_version(client, name, champion, approved_by="test")
    return name


def register_champion(server_uri: str, bundle: Path, *, prefix: str) -> str:
    """``bundle`` logged as the pyfunc model a training run logs, registered as version 1 of a fresh model, gated as
    passed (the service serves no other) and approved as its champion; returns the model's name."""
    with use_tracking_uri(server_uri), mlflow.start_run():
        model_uri = log_generator_model(bundle).model_uri
    client = MlflowClient(tracking_uri=server_uri, registry_uri=server_uri)
    name = f"facegen-{prefix}-{uuid.uuid4().hex[:8]}"
    version = register_version(model_uri, name=name, metrics={"fid": 1.0}, tags={}, client=client)
    apply_gate(client, version, GateDecision(True, []))
    approve_version(client, name, version.version, approved_by="test")
    return name


def move_champion(server_uri: str, name: str, version: str) -> None:
    approve_version(MlflowClient(tracking_uri=server_uri, registry_uri=server_uri), name, version, approved_by="test")


def serve_settings(server_uri: str, name: str, tmp_path: Path, **overrides: Any) -> ServeSettings:
    """Settings of a service on the test server; faces are marked with the session's test credentials."""
    values: dict[str, Any] = {
        "tracking_uri": server_uri,
        "model_name": name,
        "poll_interval_s": 3600,  # tests move the alias and reload explicitly unless they test the poller
        "allowed_sizes": TEST_SIZES,
        "default_size": RESOLUTION,
        "max_batch": 8,
        "max_forward_batch": 16,
        "feedback_db": tmp_path / "feedback.db",
        "admin_token_env": "FACEGEN_TEST_ADMIN_TOKEN",
        "provenance": marking_config(),
    }
    values.update(overrides)
    return load_settings(None, environ={}, **values)


_GENERATORS: dict[Path, torch.nn.Module] = {}


def expected_face(
    bundle: Path, seed: int, truncation: float = 1.0, labels: tuple[int, ...] | None = None
) -> np.ndarray:
    """The face (uint8 H×W×3, native resolution) a bundle must give for (seed, truncation, label row)."""
    if bundle not in _GENERATORS:
        _GENERATORS[bundle] = load_generator_bundle(bundle)
    return render_faces(_GENERATORS[bundle], [seed], truncation=truncation, labels=labels)[0]


@contextlib.contextmanager
def uvicorn_in_thread(app: Any, *, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on 127.0.0.1 (free port) in a thread; yields the base URL."""
    import uvicorn

    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # bound here and handed over: no port race
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()
