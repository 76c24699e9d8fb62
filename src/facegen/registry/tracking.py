"""Where facegen's MLflow lives by default, shared by the CLI, the pipeline steps and the service.

``MLFLOW_TRACKING_URI`` wins when set (a team server, ``http://…``); otherwise everything goes to one local SQLite
store under :func:`facegen.paths.facegen_home`, so tests and CI (which set ``FACEGEN_HOME``) never share a user's
state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from facegen.paths import facegen_home

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The local store's directory below ``facegen_home()``.
LOCAL_STORE_DIR = "mlflow"


def local_store_dir() -> Path:
    """Directory of the local MLflow store (SQLite database and artifacts), created on demand."""
    directory = facegen_home() / LOCAL_STORE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<facegen_home()>/mlflow/mlflow.db``.

    For the local store the directory is created here (SQLite cannot create it and fails with an opaque
    "unable to open database file" otherwise). The path is absolute, so the URI has four slashes.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{local_store_dir() / 'mlflow.db'}"


def mlflow_client(tracking_uri: str | None = None) -> MlflowClient:
    """THE way facegen builds an MLflow client: bound to one URI for tracking and registry alike.

    ``tracking_uri`` None → :func:`default_tracking_uri`. Never the process-global URI that ``mlflow.set_tracking_uri``
    (or a ZenML step's tracker) may have changed behind the caller's back, and never a registry elsewhere.
    """
    from mlflow import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def local_artifact_root() -> str:
    """Artifact root to give experiments created in the local store (``<facegen_home()>/mlflow/artifacts``).

    Without it, experiments created against a bare ``sqlite:///`` URI put artifacts under ``./mlruns`` of whatever
    directory the process happens to run in.
    """
    root = local_store_dir() / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    return root.as_uri()


def ensure_local_experiment(name: str, tracking_uri: str) -> str:
    """Create experiment ``name`` with its artifacts under the local store (for non-HTTP URIs); return its ID.

    ZenML's MLflow tracker creates missing experiments with MLflow's default artifact root (``./mlruns`` of the
    current directory); creating it first pins the artifacts next to the SQLite database.
    """
    client = mlflow_client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    is_server = tracking_uri.startswith(("http://", "https://", "databricks"))
    return client.create_experiment(name, artifact_location=None if is_server else local_artifact_root())
