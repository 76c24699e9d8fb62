"""Who may approve: a real ``mlflow server --app-name basic-auth`` on 127.0.0.1, set up by scripts/mlflow_users.py.

Specifies: without credentials nothing is answered (401); the bootstrap creates the pipeline, service and approver
users with the grants of its table and can be run again (passwords re-set, grants unchanged); the pipeline user
logs a generator, registers it and records the gate (``candidate``); the service user loads the registered version
as the service does but cannot move an alias or write a version tag (403), nor can an anonymous client (401);
the approver moves ``champion`` with ``facegen approve``. MLflow grants per registered model, not per alias: the
pipeline user could move ``champion`` too (docs/operations.md; the service's champion interlock holds then).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

from facegen.cli import main as facegen_cli
from facegen.gates import GateDecision
from facegen.models.bundle import save_generator_bundle
from facegen.models.registry import build_generator
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_registry import APPROVED_BY_TAG, GATE_STATUS_TAG, apply_gate, register_version
from facegen.registry.names import CANDIDATE_ALIAS, CHAMPION_ALIAS, GENERATOR_MODEL_NAME
from facegen.registry.tracking import mlflow_client
from facegen.serve.loading import load_registered_generator
from scripts.mlflow_users import GRANTS, TRAINING_EXPERIMENT
from tests.conftest import REPO_ROOT
from tests.mlflow_server import running_mlflow_server, use_tracking_uri

ADMIN = ("admin", "admin-password-for-tests-only")
USERS = {role: (f"facegen-{role}", f"{role}-password-for-tests-only") for role in GRANTS}
FACEGEN_MLFLOW_ENV = {
    f"FACEGEN_MLFLOW_{role.upper()}_{field}": value
    for role, (username, password) in USERS.items()
    for field, value in (("USERNAME", username), ("PASSWORD", password))
}
AUTH_INI = """[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{db}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of ``mlflow server --app-name basic-auth`` (SQLite backend and auth store in a temp dir)."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    (root / "basic_auth.ini").write_text(AUTH_INI.format(db=root / "auth.db", admin=ADMIN[0]))
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests-only",
    }
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    with running_mlflow_server(root, env, ("--app-name", "basic-auth")) as uri:
        yield uri


def refusal(error: MlflowException) -> tuple[int, str]:
    """(HTTP status, MLflow error code) of a refused request, as the client reports it (code from the status)."""
    return error.get_http_status_code(), error.error_code


@contextlib.contextmanager
def credentials(user: tuple[str, str] | None) -> Iterator[None]:
    """MLflow's client credentials (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``) for one block; None: anonymous."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in zip(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"), user or (None, None)):
            if value is None:
                patch.delenv(key, raising=False)
            else:
                patch.setenv(key, value)
        yield


def run_bootstrap(server: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **FACEGEN_MLFLOW_ENV,
        "MLFLOW_TRACKING_USERNAME": ADMIN[0],
        "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "scripts/mlflow_users.py", "--tracking-uri", server],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bootstrapped(auth_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The bootstrap run twice, then one generator logged and registered by the pipeline user, gate passed."""
    outputs = [run_bootstrap(auth_server) for _ in range(2)]
    for result in outputs:
        assert result.returncode == 0, result.stdout + result.stderr
    bundle = save_generator_bundle(
        tmp_path_factory.mktemp("bundle"),
        "dcgan",
        {"resolution": 16, "width": 8},
        build_generator("dcgan", {"resolution": 16, "width": 8}),
    )
    with credentials(USERS["pipeline"]):
        client = mlflow_client(auth_server)
        experiment = client.get_experiment_by_name(TRAINING_EXPERIMENT)  # made by the bootstrap
        with use_tracking_uri(auth_server), mlflow.start_run(experiment_id=experiment.experiment_id):
            info = log_generator_model(bundle)
        version = register_version(
            info.model_uri, name=GENERATOR_MODEL_NAME, tags={"architecture": "dcgan"}, client=client
        )
        apply_gate(client, version, GateDecision(True))
    return {"version": version.version, "outputs": [result.stdout for result in outputs]}


def test_anonymous_requests_are_refused_but_health_answers(auth_server: str) -> None:
    with urllib.request.urlopen(f"{auth_server}/health", timeout=10) as response:
        assert response.status == 200  # the probes need no credentials
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/registered-models/search", timeout=10)
    assert refused.value.code == 401


def test_bootstrap_creates_the_users_and_grants_and_can_run_again(auth_server: str, bootstrapped: dict) -> None:
    first, second = bootstrapped["outputs"]
    for role, grants in GRANTS.items():
        username = USERS[role][0]
        assert f"{role}: user {username} created" in first
        assert f"{role}: user {username} password set" in second
        for (kind, name), permission in grants.items():
            assert (
                f"{role}: {permission} on {kind} {name}" in first and f"{role}: {permission} on {kind} {name}" in second
            )
    auth = get_app_client("basic-auth", tracking_uri=auth_server)
    with credentials(ADMIN):
        experiment_id = mlflow_client(auth_server).get_experiment_by_name(TRAINING_EXPERIMENT).experiment_id
        granted = {
            role: auth.get_user_permission(USERS[role][0], "registered_model", GENERATOR_MODEL_NAME).permission
            for role in GRANTS
        }
        on_training = auth.get_user_permission(USERS["service"][0], "experiment", experiment_id).permission
    assert granted == {"pipeline": "MANAGE", "service": "READ", "approver": "MANAGE"}
    assert on_training == "READ"


def test_bootstrap_without_a_role_password_fails_naming_it(auth_server: str) -> None:
    env = {key: value for key, value in FACEGEN_MLFLOW_ENV.items() if key != "FACEGEN_MLFLOW_SERVICE_PASSWORD"}
    result = subprocess.run(
        [sys.executable, "scripts/mlflow_users.py", "--tracking-uri", auth_server],
        cwd=REPO_ROOT,
        env={**os.environ, **env, "MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "FACEGEN_MLFLOW_SERVICE_PASSWORD" in result.stderr


def test_the_service_user_loads_the_candidate(auth_server: str, bootstrapped: dict) -> None:
    with credentials(USERS["service"]):
        candidate = mlflow_client(auth_server).get_model_version_by_alias(GENERATOR_MODEL_NAME, CANDIDATE_ALIAS)
        loaded = load_registered_generator(auth_server, GENERATOR_MODEL_NAME, candidate.version)
    assert (candidate.version, loaded.version, loaded.generator.resolution) == (bootstrapped["version"],) * 2 + (16,)


@pytest.mark.parametrize("who", ["anonymous", "service"])
def test_anonymous_and_read_only_clients_cannot_move_an_alias_or_write_tags(
    auth_server: str, bootstrapped: dict, who: str
) -> None:
    version = bootstrapped["version"]
    expected = {"anonymous": (401, "UNAUTHENTICATED"), "service": (403, "PERMISSION_DENIED")}[who]
    writes = {
        "move champion": lambda c: c.set_registered_model_alias(GENERATOR_MODEL_NAME, CHAMPION_ALIAS, version),
        "move candidate away": lambda c: c.delete_registered_model_alias(GENERATOR_MODEL_NAME, CANDIDATE_ALIAS),
        "write approved_by": lambda c: c.set_model_version_tag(GENERATOR_MODEL_NAME, version, APPROVED_BY_TAG, who),
        "write gate_status": lambda c: c.set_model_version_tag(
            GENERATOR_MODEL_NAME, version, GATE_STATUS_TAG, "passed"
        ),
    }
    with credentials(None if who == "anonymous" else USERS["service"]):
        client = mlflow_client(auth_server)
        for what, write in writes.items():
            with pytest.raises(MlflowException) as refused:
                write(client)
            assert refusal(refused.value) == expected, (what, refused.value.message)
    with credentials(ADMIN):
        current = mlflow_client(auth_server).get_model_version(GENERATOR_MODEL_NAME, version)
    assert CHAMPION_ALIAS not in current.aliases and CANDIDATE_ALIAS in current.aliases
    assert APPROVED_BY_TAG not in current.tags


def test_the_approver_moves_champion_with_facegen_approve(auth_server: str, bootstrapped: dict) -> None:
    version = bootstrapped["version"]
    username, password = USERS["approver"]
    result = CliRunner().invoke(
        facegen_cli,
        ["approve", version, "--by", "Ada Lovelace", "--tracking-uri", auth_server],
        env={"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password},
    )
    assert result.exit_code == 0, result.output
    with credentials(USERS["service"]):
        champion = mlflow_client(auth_server).get_model_version_by_alias(GENERATOR_MODEL_NAME, CHAMPION_ALIAS)
    assert champion.version == version and champion.tags[APPROVED_BY_TAG] == "Ada Lovelace"


def test_the_approvers_name_with_a_wrong_password_is_refused(auth_server: str, bootstrapped: dict) -> None:
    with credentials((USERS["approver"][0], "not-the-password")), pytest.raises(MlflowException) as refused:
        mlflow_client(auth_server).set_registered_model_alias(
            GENERATOR_MODEL_NAME, CHAMPION_ALIAS, bootstrapped["version"]
        )
    assert refusal(refused.value) == (401, "UNAUTHENTICATED")


def test_permissions_are_per_model_not_per_alias_the_pipeline_can_move_champion(
    auth_server: str, bootstrapped: dict
) -> None:
    """The limit docs/operations.md states: the user that sets candidate may set champion as well."""
    version = bootstrapped["version"]
    with credentials(USERS["pipeline"]):
        client = mlflow_client(auth_server)
        client.set_registered_model_alias(GENERATOR_MODEL_NAME, CHAMPION_ALIAS, version)
        assert client.get_model_version_by_alias(GENERATOR_MODEL_NAME, CHAMPION_ALIAS).version == version


def test_ui_pages_ask_for_credentials(auth_server: str) -> None:
    """The MLflow UI (where a person could move the alias) is behind the same login."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_server}/", timeout=10)
    assert refused.value.code == 401 and "Basic" in refused.value.headers.get("WWW-Authenticate", "")
