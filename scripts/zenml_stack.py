"""Register facegen's ZenML stack: local orchestrator + artifact store, MLflow experiment tracker and model registry.

Idempotent. The experiment tracker is named ``facegen-mlflow`` in every stack, because configs/*.yaml refer to it by
that name. Usage:
    python scripts/zenml_stack.py --stack facegen-local --tracking-uri sqlite:////abs/.facegen/mlflow/mlflow.db
    python scripts/zenml_stack.py --stack facegen-test --tracking-uri http://127.0.0.1:5000 --no-activate
Prints the stack's ID (tests pass it to runs as ZENML_ACTIVE_STACK_ID instead of activating it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.exceptions import InitializationException

TRACKER = "facegen-mlflow"
MODEL_REGISTRY = "facegen-mlflow-registry"


def ensure_repository(root: Path) -> None:
    """``zenml init`` in the project root: pipeline and step sources resolve from there."""
    if not (root / ".zen").is_dir():
        try:
            Client.initialize(root=root)
        except InitializationException:
            pass


def ensure_component(client: Client, name: str, kind: StackComponentType, configuration: dict[str, str]) -> None:
    """Create the MLflow component, or update its configuration when it already exists."""
    try:
        client.get_stack_component(kind, name)
    except KeyError:
        client.create_stack_component(name=name, flavor="mlflow", component_type=kind, configuration=configuration)
    else:
        client.update_stack_component(name, kind, configuration=configuration)


def ensure_stack(stack: str, tracking_uri: str, username: str | None, password: str | None) -> str:
    client = Client()
    tracker_config = {"tracking_uri": tracking_uri}
    if username:
        tracker_config |= {"tracking_username": username, "tracking_password": password or ""}
    ensure_component(client, TRACKER, StackComponentType.EXPERIMENT_TRACKER, tracker_config)
    ensure_component(client, MODEL_REGISTRY, StackComponentType.MODEL_REGISTRY, {})
    try:
        return str(client.get_stack(stack).id)
    except KeyError:
        components = {
            StackComponentType.ORCHESTRATOR: "default",
            StackComponentType.ARTIFACT_STORE: "default",
            StackComponentType.EXPERIMENT_TRACKER: TRACKER,
            StackComponentType.MODEL_REGISTRY: MODEL_REGISTRY,
        }
        return str(client.create_stack(name=stack, components=components).id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="facegen-local")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--username", help="MLflow server username (servers without auth accept any value)")
    parser.add_argument("--password")
    parser.add_argument("--no-activate", action="store_true", help="register only; print the stack ID")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args()
    ensure_repository(args.root)
    stack_id = ensure_stack(args.stack, args.tracking_uri, args.username, args.password)
    if not args.no_activate:
        Client().activate_stack(args.stack)
    print(stack_id)


if __name__ == "__main__":
    main()
