"""Create facegen's MLflow users and their permissions on a server running MLflow's basic-auth app; idempotent.

Runs as the MLflow admin (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, what MLflow's clients read);
in Kubernetes it is the Job ``mlflow-users`` (k8s/base/mlflow-users-job.yaml), re-run after every password change.
Each role's username and password come from ``FACEGEN_MLFLOW_<ROLE>_USERNAME`` / ``_PASSWORD`` (the Job maps them
from the Secret that role's pods read). Every run brings the server to :data:`GRANTS`: missing experiments and
registered models are created (a grant needs them to exist), missing users created, passwords set to the given
ones, each grant set to exactly the listed level. Grants given by hand beyond the table are left alone.

MLflow's permissions are per experiment and per registered model, not per alias: a user who may set ``candidate``
may also move ``champion``. The service's champion interlock (gate_status, approval tags) is what holds then.

    python scripts/mlflow_users.py --tracking-uri http://mlflow.facegen.svc.cluster.local:5000
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.server import get_app_client
from mlflow.server.auth.client import AuthServiceClient

from facegen.registry.names import ATTRIBUTES_MODEL_NAME, GENERATOR_MODEL_NAME
from facegen.registry.tracking import mlflow_client

#: Experiments the pipelines log to (ZenML's MLflow tracker names them after the pipelines).
TRAINING_EXPERIMENT = "training"
ATTRIBUTES_EXPERIMENT = "attributes"

#: role → (kind, name) → permission. The least that works:
#: - pipeline: runs in both experiments (EDIT); registers versions, moves ``candidate`` and takes it back from a
#:   re-gated version, deletes stale version tags (both deletes need MANAGE on facegen-generator); promotes
#:   attribute models (EDIT: it only sets an alias).
#: - service: reads the champion's version, tags and model files (READ on the model and on the experiment whose
#:   run logged the model files).
#: - approver: a person's ``facegen approve`` / UI alias move (MANAGE on facegen-generator: moving an alias needs
#:   EDIT, ``candidate``'s removal on a failed human-eval gate needs MANAGE) and ``facegen human-eval import``
#:   (EDIT on the training experiment: the ratings' metrics, per-rater table and model card go on the version's run).
GRANTS: dict[str, dict[tuple[str, str], str]] = {
    "pipeline": {
        ("experiment", TRAINING_EXPERIMENT): "EDIT",
        ("experiment", ATTRIBUTES_EXPERIMENT): "EDIT",
        ("registered_model", GENERATOR_MODEL_NAME): "MANAGE",
        ("registered_model", ATTRIBUTES_MODEL_NAME): "EDIT",
    },
    "service": {
        ("experiment", TRAINING_EXPERIMENT): "READ",
        ("registered_model", GENERATOR_MODEL_NAME): "READ",
    },
    "approver": {
        ("experiment", TRAINING_EXPERIMENT): "EDIT",
        ("registered_model", GENERATOR_MODEL_NAME): "MANAGE",
    },
}


def _is_error(error: MlflowException, code: int) -> bool:
    return error.error_code == ErrorCode.Name(code)


def credentials(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """role → (username, password) from ``FACEGEN_MLFLOW_<ROLE>_USERNAME`` / ``_PASSWORD``; SystemExit if unset."""
    found, missing = {}, []
    for role in GRANTS:
        keys = (f"FACEGEN_MLFLOW_{role.upper()}_USERNAME", f"FACEGEN_MLFLOW_{role.upper()}_PASSWORD")
        missing += [key for key in keys if not environ.get(key, "").strip()]
        found[role] = (environ.get(keys[0], "").strip(), environ.get(keys[1], ""))
    if missing:
        raise SystemExit(f"not set: {', '.join(missing)} (each role's MLflow username and password)")
    return found


def ensure_resources(tracking_uri: str) -> dict[tuple[str, str], str]:
    """Create what the grants name when missing; (kind, name) → the id a grant takes (experiment id, model name)."""
    client = mlflow_client(tracking_uri)
    ids: dict[tuple[str, str], str] = {}
    for kind, name in {resource for grants in GRANTS.values() for resource in grants}:
        if kind == "experiment":
            experiment = client.get_experiment_by_name(name)
            ids[kind, name] = experiment.experiment_id if experiment else client.create_experiment(name)
            continue
        try:
            client.create_registered_model(name)
        except MlflowException as error:
            if not _is_error(error, RESOURCE_ALREADY_EXISTS):
                raise
        ids[kind, name] = name
    return ids


def ensure_user(auth: AuthServiceClient, username: str, password: str) -> str:
    """Create ``username`` or set its password; returns what was done."""
    try:
        auth.create_user(username, password)
        return "created"
    except MlflowException as error:
        if not _is_error(error, RESOURCE_ALREADY_EXISTS):
            raise
    auth.update_user_password(username, password)
    return "password set"


def ensure_grant(auth: AuthServiceClient, username: str, kind: str, resource_id: str, permission: str) -> None:
    """Exactly ``permission`` for ``username`` on the resource (an existing grant of another level is replaced)."""
    try:
        auth.grant_user_permission(username, kind, resource_id, permission)
        return
    except MlflowException as error:
        if not _is_error(error, RESOURCE_ALREADY_EXISTS):
            raise
    try:
        auth.revoke_user_permission(username, kind, resource_id)
    except MlflowException as error:
        if not _is_error(error, RESOURCE_DOES_NOT_EXIST):
            raise
    auth.grant_user_permission(username, kind, resource_id, permission)


def bootstrap(tracking_uri: str, users: Mapping[str, tuple[str, str]]) -> list[str]:
    """Bring the server to :data:`GRANTS` for ``users`` (role → username, password); one line per action."""
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
    ids = ensure_resources(tracking_uri)
    lines = []
    for role, grants in GRANTS.items():
        username, password = users[role]
        lines.append(f"{role}: user {username} {ensure_user(auth, username, password)}")
        for (kind, name), permission in grants.items():
            ensure_grant(auth, username, kind, ids[kind, name], permission)
            lines.append(f"{role}: {permission} on {kind} {name}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="the MLflow server [default: $MLFLOW_TRACKING_URI]",
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri or not args.tracking_uri.startswith(("http://", "https://")):
        raise SystemExit(f"--tracking-uri must be the MLflow server's http(s) URL, got {args.tracking_uri!r}")
    if not os.environ.get("MLFLOW_TRACKING_USERNAME") or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        raise SystemExit("set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD to the MLflow admin's credentials")
    for line in bootstrap(args.tracking_uri, credentials(os.environ)):
        print(line)


if __name__ == "__main__":
    sys.exit(main())
