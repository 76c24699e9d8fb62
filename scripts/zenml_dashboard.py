"""The ZenML dashboard on this project's ZenML store, offline on 127.0.0.1, in the foreground until Ctrl-C / SIGTERM.

ZenML's own local server as `zenml login --local --blocking` runs it (ZenML's server app and the dashboard assets its
wheel ships; no login: the local server is always NO_AUTH), except that the client is not switched to it: runs keep
writing to the SQLite store directly and the server reads the same file. Run with .venv-dashboard/bin/python (the
`zenml[server]` extra); the store is the one ZENML_CONFIG_PATH names (`make dashboard`: .facegen/zenml). Usage:

    ZENML_CONFIG_PATH=.facegen/zenml .venv-dashboard/bin/python scripts/zenml_dashboard.py [--port 8237]
"""

from __future__ import annotations

import argparse
import ipaddress

from zenml.cli.login import start_local_server
from zenml.client import Client
from zenml.config.global_config import GlobalConfiguration
from zenml.constants import DEFAULT_USERNAME, FINISHED_ONBOARDING_SURVEY_KEY, PROJECTS, RUNS
from zenml.models import ServerSettingsUpdate
from zenml.zen_server.deploy.daemon.daemon_zen_server import DaemonServerDeploymentConfig

HOST = ipaddress.IPv4Address("127.0.0.1")
PIPELINE = "training"


def check_local_store() -> None:
    """The local server serves ZenML's default local SQLite store (under ZENML_CONFIG_PATH) and nothing else."""
    config = GlobalConfiguration()
    store, default = config.store_configuration, config.get_default_store()
    if store.url != default.url:
        raise SystemExit(
            f"the dashboard serves the local store {default.url}, but the client's store is {store.url}: "
            "point ZENML_CONFIG_PATH at a project-local store (make dashboard: .facegen/zenml)"
        )


def settle_for_offline(client: Client) -> None:
    """Mark the no-auth server's user as having declined the newsletter and finished the sign-up survey (the dashboard
    otherwise sends every page, a run's included, to a name-and-email form first), and turn off the dashboard's
    announcements and updates (fetched from GitHub): offline there is nothing to sign up for or fetch."""
    user = client.get_user(DEFAULT_USERNAME)
    if user.email_opted_in is None or FINISHED_ONBOARDING_SURVEY_KEY not in user.user_metadata:
        client.update_user(
            DEFAULT_USERNAME,
            updated_email_opt_in=bool(user.email_opted_in),
            updated_metadata={**user.user_metadata, FINISHED_ONBOARDING_SURVEY_KEY: True},
        )
    # to the store itself: Client.update_server_settings sets every field, and the SQL store writes its None name
    client.zen_store.update_server_settings(ServerSettingsUpdate(display_announcements=False, display_updates=False))


def latest_run_line(client: Client, base_url: str) -> str:
    """Where the latest `training` run's page is (its DAG, steps, artifacts, metadata), or that there is none yet."""
    runs = client.list_pipeline_runs(pipeline_name=PIPELINE, sort_by="desc:created", size=1, hydrate=True)
    if not runs.items:
        return f"no `{PIPELINE}` run in this store yet (make train)"
    run = runs.items[0]
    return f"latest `{PIPELINE}` run ({run.status.value}): {base_url}{PROJECTS}/{run.project.name}{RUNS}/{run.id}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DaemonServerDeploymentConfig.model_fields["port"].default)
    args = parser.parse_args()
    check_local_store()
    client = Client()
    settle_for_offline(client)
    base_url = f"http://{HOST}:{args.port}"
    print(f"ZenML dashboard: {base_url} (store: {GlobalConfiguration().store_configuration.url}); Ctrl-C stops it")
    print(latest_run_line(client, base_url), flush=True)
    start_local_server(ip_address=HOST, port=args.port, blocking=True)


if __name__ == "__main__":
    main()
