"""The ``facegen`` command line. One ``click`` group, ``main``; each command is a thin shell over the library.

Add a command with ``@main.command()``; import heavy modules (torch, mlflow) inside the command so ``facegen --help``
stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from facegen.registry.names import GENERATOR_MODEL_NAME

# MLflow's client otherwise looks a telemetry host up on first use; a person's own setting still wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@click.group()
@click.version_option(package_name="facegen")
def main() -> None:
    """facegen: train, evaluate, approve and serve face generators."""


@main.command(short_help="Make VERSION the champion (a person's approval).")
@click.argument("version")
@click.option("--by", "approved_by", required=True, help="Who approves (recorded in the approved_by tag).")
@click.option("--force", is_flag=True, help="Approve a version that did not pass the automatic gates.")
@click.option("--reason", default=None, help="Why a forced approval is justified (required with --force).")
@click.option("--model-name", default=GENERATOR_MODEL_NAME, show_default=True, help="Registered model name.")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else the local store under $FACEGEN_HOME].",
)
def approve(
    version: str, approved_by: str, force: bool, reason: str | None, model_name: str, tracking_uri: str | None
) -> None:
    """Make VERSION the champion (the served model): a person's decision, recorded on the version."""
    from mlflow.exceptions import MlflowException

    from facegen.registry.model_registry import (
        APPROVAL_FORCED_REASON_TAG,
        APPROVED_AT_TAG,
        APPROVED_BY_TAG,
        GATE_STATUS_TAG,
        ApprovalRefused,
        approve_version,
        champion_version,
    )
    from facegen.registry.names import CHAMPION_ALIAS
    from facegen.registry.tracking import mlflow_client

    if force and not (reason or "").strip():
        raise click.UsageError("--force needs --reason TEXT saying why the gates are overridden")
    client = mlflow_client(tracking_uri)
    uri = client.tracking_uri
    try:
        previous = champion_version(client, model_name)
        approved = approve_version(client, model_name, version, approved_by=approved_by, force=force, reason=reason)
    except ApprovalRefused as error:
        raise click.ClickException(f"refused: {error}") from error
    except MlflowException as error:
        raise click.ClickException(f"{model_name} version {version}: {error.message}") from error
    if previous is not None and previous.version == approved.version:
        click.echo(f"{model_name}: {CHAMPION_ALIAS} stays at version {approved.version}, re-approved ({uri})")
    else:
        before = f"version {previous.version}" if previous is not None else "no version"
        click.echo(f"{model_name}: {CHAMPION_ALIAS} moved from {before} to version {approved.version} ({uri})")
    click.echo(f"approved by {approved.tags.get(APPROVED_BY_TAG)} at {approved.tags.get(APPROVED_AT_TAG)}")
    if APPROVAL_FORCED_REASON_TAG in approved.tags:
        gate_status = approved.tags.get(GATE_STATUS_TAG, "never gated")
        click.echo(f"forced past gate_status={gate_status!r}: {approved.tags[APPROVAL_FORCED_REASON_TAG]}")


@main.command("mlflow-init", short_help="Create the MLflow experiment (local store: artifacts beside the database).")
@click.option("--experiment", default="training", show_default=True, help="Experiment name (= ZenML pipeline name).")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: as for approve].")
def mlflow_init(experiment: str, tracking_uri: str | None) -> None:
    """Create EXPERIMENT if missing, so runs of the pipeline of that name log where facegen expects."""
    from facegen.registry.tracking import default_tracking_uri, ensure_local_experiment

    uri = tracking_uri or default_tracking_uri()
    click.echo(f"experiment {experiment!r}: id {ensure_local_experiment(experiment, uri)} ({uri})")


@main.command(short_help="Serve faces from the champion generator (FastAPI + uvicorn).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Serve settings YAML [default: configs/serve.yaml when present, else built-in defaults].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: config, else as for approve].")
@click.option("--log-level", default="info", show_default=True, help="uvicorn / facegen log level.")
def serve(config_path: str | None, host: str, port: int, tracking_uri: str | None, log_level: str) -> None:
    """Serve faces from models:/NAME@ALIAS, following the alias as it moves (see docs/serving.md)."""
    import logging

    import uvicorn

    from facegen.serve.app import create_app
    from facegen.serve.settings import load_settings

    try:
        settings = load_settings(config_path, tracking_uri=tracking_uri)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(
        f"serving {settings.model_uri()} from {settings.resolved_tracking_uri()} on http://{host}:{port} "
        f"(alias polled every {settings.poll_interval_s:g} s)"
    )
    # One process: one model in memory and one alias poller; the generator coalesces concurrent requests itself.
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, workers=1, access_log=False)


@main.command("feedback-export", short_help="Re-generate well-rated faces as an image source for training.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--min-rating", type=float, default=None, help="Mean rating a face needs [default: from the config, 4].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Serve settings YAML.")
@click.option("--db", "feedback_db", type=click.Path(dir_okay=False), default=None, help="Feedback SQLite file.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: config, else as for approve].")
def feedback_export(
    out_dir: str, min_rating: float | None, config_path: str | None, feedback_db: str | None, tracking_uri: str | None
) -> None:
    """Write faces rated MIN_RATING or better (mean per face) as PNGs at the generator's resolution plus feedback.csv
    into OUT: ingest's feedback_source (see docs/data.md, "Feedback faces")."""
    from facegen.provenance.marking import MarkingUnavailable
    from facegen.serve.feedback_export import export_feedback
    from facegen.serve.settings import load_settings

    try:
        settings = load_settings(config_path, tracking_uri=tracking_uri, feedback_db=feedback_db)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    threshold = settings.feedback_export_min_rating if min_rating is None else min_rating
    try:
        result = export_feedback(
            settings.resolved_feedback_db(),
            out_dir,
            min_rating=threshold,
            tracking_uri=settings.resolved_tracking_uri(),
            provenance=settings.provenance,
            model_name=settings.model_name,
        )
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    except MarkingUnavailable as error:
        raise click.ClickException(f"no face exported, none could be marked as synthetic: {error}") from error
    click.echo(
        f"{len(result.written)} face(s) rated >= {threshold:g} written to {result.out_dir} ({result.csv_path.name})"
    )
    for version, why in result.skipped.items():
        click.echo(f"skipped version {version}: {why}", err=True)
    if result.unlisted:
        click.echo(
            f"{len(result.unlisted)} other image(s) in {result.out_dir} are not from this export (not in "
            f"{result.csv_path.name}): ingest quarantines them as feedback_unlisted",
            err=True,
        )


@main.command(short_help="Report each file's C2PA manifest, its signer's trust and the invisible watermark.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Serve settings YAML whose provenance block names the trusted CA [default: configs/serve.yaml].",
)
@click.option(
    "--trust-anchor",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM of the CA to trust [default: trust-anchor.pem in the configured credentials folder].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file instead of text.")
def verify(files: tuple[Path, ...], config_path: str | None, trust_anchor: Path | None, as_json: bool) -> None:
    """For each FILE: C2PA manifest valid / invalid / absent and what it says, trusted or untrusted signer, and the
    watermark with the model version it names. Exits 1 when any file could not be read (the others are reported)."""
    import json

    from facegen.provenance.verify import format_report, verify_files
    from facegen.serve.settings import load_settings

    if trust_anchor is None:
        try:
            configured = load_settings(config_path).provenance.trust_anchor_path()
        except (OSError, ValueError) as error:
            raise click.ClickException(str(error)) from error
        if configured.is_file():
            trust_anchor = configured
        else:
            click.echo(f"no trust anchor at {configured}: every signer reads as untrusted", err=True)
    reports = verify_files(list(files), trust_anchor)
    for report in reports:
        click.echo(json.dumps(report.as_dict()) if as_json else format_report(report))
    if any(report.error for report in reports):
        raise SystemExit(1)


@main.group(short_help="Signing credentials of the faces' C2PA manifests.")
def provenance() -> None:
    """Signing credentials for C2PA content credentials (see docs/serving.md, "Provenance")."""


@provenance.command("init", short_help="Make a throwaway local CA and signing certificate (once; make setup).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Serve settings YAML naming the credentials folder [default: configs/serve.yaml].",
)
@click.option("--force", is_flag=True, help="Replace valid credentials too (faces signed before read untrusted).")
def provenance_init(config_path: str | None, force: bool) -> None:
    """Write trust-anchor.pem, signer-chain.pem and signer-key.pem into the configured credentials folder
    ($FACEGEN_HOME/provenance by default), unless usable ones are there already."""
    from facegen.provenance.credentials import signing_problem, write_local_credentials
    from facegen.serve.settings import load_settings

    try:
        config = load_settings(config_path).provenance.model_copy(update={"enabled": True})
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    directory = config.resolved_credentials_dir()
    problem = signing_problem(config)
    if problem is None and not force:
        click.echo(f"signing credentials in {directory} are usable: kept (--force replaces them)")
        return
    write_local_credentials(directory)
    click.echo(f"wrote a local CA and signing certificate to {directory}" + (f" (was: {problem})" if problem else ""))


@main.group("human-eval", short_help="Import raters' answers on an exported set; finish the human-eval gate.")
def human_eval() -> None:
    """Human evaluation: score raters' answers on a version's exported set (see docs/human_eval.md)."""


@human_eval.command("import", short_help="Score rating files, log them on the version, finish its human-eval gate.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--version", required=True, help="Model version the set was exported for.")
@click.option("--model-name", default=GENERATOR_MODEL_NAME, show_default=True, help="Registered model name.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: as for approve].")
@click.option(
    "--answer-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="answer_key.csv to use [default: fetched from the version's human_eval_set tag].",
)
def human_eval_import(
    files: tuple[str, ...], version: str, model_name: str, tracking_uri: str | None, answer_key: str | None
) -> None:
    """Score FILES (CSV / JSON from the rating page, or filled-in templates) and record the results on VERSION.

    A version awaiting human evaluation becomes candidate when the results meet its recorded requirement, and
    fails otherwise; any other version is only annotated.
    """
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    from facegen.humaneval.ratings import RatingsError
    from facegen.humaneval.results import PER_RATER_ARTIFACT, AnswerKeyUnavailable, import_ratings
    from facegen.humaneval.scoring import summary_lines
    from facegen.registry.model_registry import GATE_REASONS_TAG, GATE_STATUS_TAG
    from facegen.registry.names import CANDIDATE_ALIAS
    from facegen.registry.tracking import mlflow_client

    client = mlflow_client(tracking_uri)
    uri = client.tracking_uri
    try:
        outcome = import_ratings(
            client, model_name, version, [Path(f) for f in files], answer_key=Path(answer_key) if answer_key else None
        )
    except RatingsError as error:
        raise click.ClickException(f"ratings not imported:\n{error}") from error
    except (AnswerKeyUnavailable, ValueError) as error:  # ValueError: the version's requirement tags are unreadable
        raise click.ClickException(str(error)) from error
    except MlflowException as error:
        raise click.ClickException(f"{model_name} version {version}: {error.message}") from error
    click.echo(f"{model_name} version {version}: {len(files)} rating file(s) imported ({uri})")
    for line in summary_lines(outcome.results):
        click.echo(line)
    logged = f"metrics and {PER_RATER_ARTIFACT} on run {outcome.run_id}" if outcome.run_id else "no run to log on"
    click.echo(f"recorded: version tags human_eval.*; {logged}")
    tags = outcome.version.tags or {}
    if outcome.decision is None:
        click.echo(f"gate: unchanged (gate_status {tags.get(GATE_STATUS_TAG)!r}, not awaiting human evaluation)")
    elif outcome.decision.passed and CANDIDATE_ALIAS in (outcome.version.aliases or []):
        click.echo(f"gate: human evaluation passed; {CANDIDATE_ALIAS} is now version {version}")
    elif outcome.decision.passed:
        click.echo(f"gate: human evaluation passed; {tags.get(GATE_REASONS_TAG)}")
    else:
        click.echo(f"gate: human evaluation failed: {tags.get(GATE_REASONS_TAG)}")


@main.command("check-config", short_help="Check a training pipeline config before it runs (make train does).")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_config(config: Path) -> None:
    """The training knobs of CONFIG are known and its image side is one its architecture is built at: a second
    here, where a wrong side would otherwise fail at train_gan, after ingest, screening and packing."""
    import yaml

    from facegen.train.config import check_run_config

    run = yaml.safe_load(config.read_text()) or {}
    try:
        training = check_run_config(run)
    except ValueError as error:
        raise click.ClickException(f"{config}: {error}") from error
    side = (run.get("parameters") or {}).get("resolution", "the pipeline's default side")
    click.echo(f"{config}: {training.architecture} at {side}, ok")


@main.command(short_help="Print what the latest training run decided (make train ends with it).")
@click.option("--run-name", default=None, help="A run of the `training` experiment [default: the newest one].")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI / local].")
def outcome(run_name: str | None, tracking_uri: str | None) -> None:
    """Key metrics, the gate's result and reasons, the registered version and aliases, pictures, next command."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the summary is the whole output
    from facegen.registry.run_outcome import format_outcome, latest_outcome
    from facegen.registry.tracking import mlflow_client

    try:
        click.echo(format_outcome(latest_outcome(mlflow_client(tracking_uri), run_name=run_name)))
    except LookupError as error:
        raise click.ClickException(str(error)) from error


if __name__ == "__main__":
    main()
