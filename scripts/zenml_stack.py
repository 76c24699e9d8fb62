"""Register a facegen ZenML stack: orchestrator, artifact store, MLflow experiment tracker and model registry.

Idempotent: components and the stack are created, or updated in place when they exist. The experiment tracker is
named ``facegen-mlflow`` in every stack, because configs/*.yaml refer to it by that name. Usage:

    # local (make train): local orchestrator + local artifact store
    python scripts/zenml_stack.py --stack facegen-local --tracking-uri sqlite:////abs/.facegen/mlflow/mlflow.db
    python scripts/zenml_stack.py --stack facegen-test --tracking-uri http://127.0.0.1:5000 --no-activate

    # artifacts in S3 (or MinIO / any S3-compatible store with --s3-endpoint-url); the keys go into the ZenML
    # secret named by --s3-secret, copied from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]
    python scripts/zenml_stack.py --stack facegen-s3 --tracking-uri http://mlflow:5000 \\
        --artifact-store s3://facegen-artifacts/zenml --s3-endpoint-url http://minio:9000 --s3-secret facegen-s3

    # Kubernetes (see scripts/register_k8s_stack.sh and docs/operations.md)
    python scripts/zenml_stack.py --stack facegen-k8s --tracking-uri http://mlflow.facegen.svc:5000 \\
        --artifact-store s3://facegen-artifacts/zenml --s3-secret facegen-s3 \\
        --orchestrator kubernetes --kubernetes-context prod --kubernetes-namespace facegen \\
        --container-registry registry.example.com/facegen --image-builder local

    # Kubeflow Pipelines (scripts/register_kubeflow_stack.sh; run with .venv-kubeflow/bin/python)
    python scripts/zenml_stack.py --stack facegen-kubeflow ... --orchestrator kubeflow --kubeflow-host https://kfp.example.com

Prints the stack's ID (tests pass it to runs as ZENML_ACTIVE_STACK_ID instead of activating it). Credentials are never
written into a component's configuration: they live in a ZenML secret (or come from the environment where steps run).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.exceptions import InitializationException

TRACKER = "facegen-mlflow"
MODEL_REGISTRY = "facegen-mlflow-registry"
S3_ARTIFACT_STORE = "facegen-s3"
K8S_ORCHESTRATOR = "facegen-k8s"
KFP_ORCHESTRATOR = "facegen-kubeflow"
#: ZenML's Kubeflow orchestrator with the pod settings and retries KFP 2 loses put back (flavors/kubeflow_orchestrator.py)
KUBEFLOW_FLAVOR = "facegen_kubeflow"
KUBEFLOW_FLAVOR_SOURCE = "flavors.kubeflow_orchestrator.FacegenKubeflowOrchestratorFlavor"
CONTAINER_REGISTRY = "facegen-registry"
IMAGE_BUILDER = "facegen-image-builder"

#: Environment variable -> key in the ZenML secret the S3 artifact store authenticates with.
S3_SECRET_KEYS = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
}
#: Environment variable -> key in the ZenML secret the MLflow tracker authenticates with (--mlflow-secret).
MLFLOW_SECRET_KEYS = {"FACEGEN_MLFLOW_USERNAME": "username", "FACEGEN_MLFLOW_PASSWORD": "password"}


def ensure_repository(root: Path) -> None:
    """``zenml init`` in the project root: pipeline and step sources resolve from there."""
    if not (root / ".zen").is_dir():
        try:
            Client.initialize(root=root)
        except InitializationException:
            pass


def ensure_component(
    client: Client, name: str, kind: StackComponentType, configuration: dict[str, Any], flavor: str = "mlflow"
) -> None:
    """Create the component, or update its configuration when it exists (its flavor must match)."""
    try:
        existing = client.get_stack_component(kind, name)
    except KeyError:
        client.create_stack_component(name=name, flavor=flavor, component_type=kind, configuration=configuration)
        return
    if existing.flavor_name != flavor:
        raise SystemExit(
            f"{kind.value} {name!r} exists with flavor {existing.flavor_name!r}, not {flavor!r}: "
            f"delete it first (zenml {kind.value.replace('_', '-')} delete {name})"
        )
    client.update_stack_component(name, kind, configuration=configuration)


def ensure_secret(client: Client, name: str, environ: dict[str, str], keys: dict[str, str], required: int) -> None:
    """Create or update the ZenML secret ``name`` from the environment variables ``keys`` maps to secret keys.

    Without the first ``required`` of those variables the secret must already exist (``zenml secret create``).
    """
    values = {key: environ[env] for env, key in keys.items() if environ.get(env)}
    try:
        client.get_secret(name, allow_partial_name_match=False)
    except KeyError:
        needed = list(keys.items())[:required]
        if not {key for _, key in needed} <= values.keys():
            raise SystemExit(
                f"ZenML secret {name!r} does not exist and {' / '.join(env for env, _ in needed)} are not set: "
                f"export them, or create it: zenml secret create {name} "
                + " ".join(f"--{key}=..." for _, key in needed)
            ) from None
        client.create_secret(name=name, values=values)
    else:
        if values:
            client.update_secret(name, add_or_update_values=values)


def s3_store_configuration(path: str, endpoint_url: str | None, region: str | None, secret: str | None) -> dict:
    """Configuration of ZenML's S3 artifact store: no keys in it, only the name of the secret holding them."""
    configuration: dict[str, Any] = {"path": path.rstrip("/")}
    client_kwargs = {key: value for key, value in (("endpoint_url", endpoint_url), ("region_name", region)) if value}
    if client_kwargs:
        configuration["client_kwargs"] = client_kwargs
    if secret:
        configuration["authentication_secret"] = secret
    return configuration


def ensure_kubeflow_orchestrator(client: Client, args: argparse.Namespace) -> str:
    """Register flavors.kubeflow_orchestrator's flavor (once) and the Kubeflow Pipelines orchestrator; its name."""
    try:
        client.get_flavor_by_name_and_type(KUBEFLOW_FLAVOR, StackComponentType.ORCHESTRATOR)
    except KeyError:
        client.create_flavor(source=KUBEFLOW_FLAVOR_SOURCE, component_type=StackComponentType.ORCHESTRATOR)
    if bool(args.kubeflow_host) == bool(args.kubernetes_context):
        raise SystemExit("the Kubeflow orchestrator needs --kubeflow-host URL or --kubernetes-context NAME (one)")
    orchestrator: dict[str, Any] = {"kubeflow_namespace": args.kubeflow_namespace, "synchronous": False}
    if args.kubeflow_host:
        orchestrator["kubeflow_hostname"] = args.kubeflow_host
    else:
        orchestrator["kubernetes_context"] = args.kubernetes_context
    if args.kubeflow_user_namespace:
        orchestrator["user_namespace"] = args.kubeflow_user_namespace
    if args.skip_local_validations:
        orchestrator["skip_local_validations"] = True
    ensure_component(client, KFP_ORCHESTRATOR, StackComponentType.ORCHESTRATOR, orchestrator, flavor=KUBEFLOW_FLAVOR)
    return KFP_ORCHESTRATOR


def ensure_stack(args: argparse.Namespace, environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ if environ is None else environ)
    client = Client()
    tracker_config = {"tracking_uri": args.tracking_uri}
    if args.mlflow_secret:  # an MLflow server with auth: the credentials stay in a ZenML secret, referenced here
        ensure_secret(client, args.mlflow_secret, environ, MLFLOW_SECRET_KEYS, required=2)
        tracker_config |= {
            "tracking_username": f"{{{{{args.mlflow_secret}.username}}}}",
            "tracking_password": f"{{{{{args.mlflow_secret}.password}}}}",
        }
    elif args.username:
        tracker_config |= {"tracking_username": args.username, "tracking_password": args.password or ""}
    ensure_component(client, TRACKER, StackComponentType.EXPERIMENT_TRACKER, tracker_config)
    ensure_component(client, MODEL_REGISTRY, StackComponentType.MODEL_REGISTRY, {})
    components: dict[StackComponentType, str] = {
        StackComponentType.ORCHESTRATOR: "default",
        StackComponentType.ARTIFACT_STORE: "default",
        StackComponentType.EXPERIMENT_TRACKER: TRACKER,
        StackComponentType.MODEL_REGISTRY: MODEL_REGISTRY,
    }

    if args.artifact_store:
        if not args.artifact_store.startswith("s3://"):
            raise SystemExit(f"--artifact-store must be an s3://bucket/prefix, got {args.artifact_store!r}")
        if args.s3_secret:
            ensure_secret(client, args.s3_secret, environ, S3_SECRET_KEYS, required=2)
        configuration = s3_store_configuration(
            args.artifact_store, args.s3_endpoint_url, args.s3_region, args.s3_secret
        )
        ensure_component(client, S3_ARTIFACT_STORE, StackComponentType.ARTIFACT_STORE, configuration, flavor="s3")
        components[StackComponentType.ARTIFACT_STORE] = S3_ARTIFACT_STORE
    elif args.s3_endpoint_url or args.s3_secret or args.s3_region:
        raise SystemExit("--s3-endpoint-url, --s3-region and --s3-secret need --artifact-store s3://...")

    if args.orchestrator != "local" and not args.container_registry:
        raise SystemExit(f"the {args.orchestrator} orchestrator needs --container-registry (where images are pushed)")
    if args.orchestrator == "kubeflow":
        orchestrator_name = ensure_kubeflow_orchestrator(client, args)
    elif args.orchestrator == "kubernetes":
        if not (args.kubernetes_context or args.incluster):
            raise SystemExit("the Kubernetes orchestrator needs --kubernetes-context NAME (or --incluster)")
        orchestrator: dict[str, Any] = {"kubernetes_namespace": args.kubernetes_namespace, "incluster": args.incluster}
        if args.kubernetes_context:
            orchestrator["kubernetes_context"] = args.kubernetes_context
        if args.service_account:
            orchestrator["service_account_name"] = args.service_account
        if args.skip_local_validations:
            orchestrator["skip_local_validations"] = True
        ensure_component(client, K8S_ORCHESTRATOR, StackComponentType.ORCHESTRATOR, orchestrator, flavor="kubernetes")
        orchestrator_name = K8S_ORCHESTRATOR
    if args.orchestrator != "local":
        ensure_component(
            client,
            CONTAINER_REGISTRY,
            StackComponentType.CONTAINER_REGISTRY,
            {"uri": args.container_registry},
            flavor=args.container_registry_flavor,
        )
        builder: dict[str, Any] = {}
        if args.image_builder == "kaniko":
            builder = {
                "kubernetes_context": args.kubernetes_context or "",
                "kubernetes_namespace": args.kubernetes_namespace,
            }
        ensure_component(client, IMAGE_BUILDER, StackComponentType.IMAGE_BUILDER, builder, flavor=args.image_builder)
        components |= {
            StackComponentType.ORCHESTRATOR: orchestrator_name,
            StackComponentType.CONTAINER_REGISTRY: CONTAINER_REGISTRY,
            StackComponentType.IMAGE_BUILDER: IMAGE_BUILDER,
        }
        if components[StackComponentType.ARTIFACT_STORE] == "default":
            raise SystemExit(
                f"the {args.orchestrator} orchestrator needs a remote artifact store: pass --artifact-store s3://..."
            )

    try:
        existing = client.get_stack(args.stack)
    except KeyError:
        return str(client.create_stack(name=args.stack, components=components).id)
    current = {kind: [c.name for c in existing.components.get(kind, [])] for kind in components}
    if any(current[kind] != [name] for kind, name in components.items()):
        client.update_stack(args.stack, component_updates=components)
    return str(existing.id)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="facegen-local")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--username", help="MLflow server username (servers without auth accept any value)")
    parser.add_argument("--password")
    parser.add_argument(
        "--mlflow-secret",
        metavar="NAME",
        help="ZenML secret with the MLflow user (username, password), created/updated from "
        "FACEGEN_MLFLOW_USERNAME / FACEGEN_MLFLOW_PASSWORD when set; the tracker references it "
        "instead of holding the credentials (k8s: the facegen-pipeline user)",
    )
    parser.add_argument("--no-activate", action="store_true", help="register only; print the stack ID")
    parser.add_argument("--root", type=Path, default=Path.cwd())

    s3 = parser.add_argument_group("S3 artifact store")
    s3.add_argument("--artifact-store", metavar="S3_URI", help="s3://bucket/prefix (default: the local store)")
    s3.add_argument("--s3-endpoint-url", help="endpoint of MinIO or another S3-compatible store (not for AWS)")
    s3.add_argument("--s3-region", help="region name passed to the S3 client")
    s3.add_argument(
        "--s3-secret",
        metavar="NAME",
        help="ZenML secret with the S3 keys, created/updated from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
        "when set; omit it to use the default AWS credential chain where steps run",
    )

    k8s = parser.add_argument_group("Kubernetes orchestrator")
    k8s.add_argument("--orchestrator", choices=["local", "kubernetes", "kubeflow"], default="local")
    k8s.add_argument("--kubernetes-context", help="kubeconfig context of the cluster")
    k8s.add_argument("--incluster", action="store_true", help="submit from a pod inside the cluster")
    k8s.add_argument("--kubernetes-namespace", default="facegen")
    k8s.add_argument(
        "--service-account",
        default="facegen-zenml",
        help="service account of the orchestrator pod (k8s/base/zenml-rbac.yaml)",
    )
    k8s.add_argument("--container-registry", metavar="URI", help="registry the step images are pushed to")
    k8s.add_argument("--container-registry-flavor", default="default", help="default | aws | gcp | azure | ...")
    k8s.add_argument(
        "--image-builder",
        choices=["local", "kaniko"],
        default="local",
        help="local: Docker on the submitting machine (CI); kaniko: builds inside the cluster",
    )
    k8s.add_argument("--skip-local-validations", action="store_true")

    kfp = parser.add_argument_group("Kubeflow Pipelines orchestrator (--orchestrator kubeflow; needs .venv-kubeflow)")
    kfp.add_argument("--kubeflow-host", metavar="URL", help="KFP API endpoint (else: via --kubernetes-context)")
    kfp.add_argument("--kubeflow-namespace", default="kubeflow", help="namespace Kubeflow Pipelines runs in")
    kfp.add_argument("--kubeflow-user-namespace", help="profile namespace of a multi-user Kubeflow")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    ensure_repository(args.root)
    stack_id = ensure_stack(args)
    if not args.no_activate:
        Client().activate_stack(args.stack)
    print(stack_id)


if __name__ == "__main__":
    main()
