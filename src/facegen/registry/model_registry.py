"""The generator's model registry: register versions, gate them automatically, approve them by hand.

Names (see DESIGN.md): registered model ``facegen-generator``; alias ``candidate`` (passed the automatic gates, set
by :func:`apply_gate`) and alias ``champion`` (approved and served, moved only by :func:`approve_version`, i.e. by a
person through ``facegen approve`` or the MLflow UI). Version tags: ``gate_status`` (passed / failed),
``gate_reasons``, ``approved_by``, ``approved_at`` and, for every metric given at registration, ``metric.<name>``.

Everything goes through the ``MlflowClient`` passed in, so the caller decides which server it talks to.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

MODEL_NAME = "facegen-generator"
CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"

GATE_STATUS_TAG = "gate_status"
GATE_REASONS_TAG = "gate_reasons"
APPROVED_BY_TAG = "approved_by"
APPROVED_AT_TAG = "approved_at"
APPROVAL_FORCED_REASON_TAG = "approval_forced_reason"
METRIC_TAG_PREFIX = "metric."

GATE_PASSED = "passed"
GATE_FAILED = "failed"

#: Seconds :func:`register_generator` waits for a new version to become READY.
REGISTRATION_TIMEOUT_S = 300.0


class ApprovalRefused(Exception):
    """A version may not become champion: it did not pass the gates and the approval was not a reasoned override."""


@dataclass(frozen=True)
class GateThresholds:
    """Automatic gates a new version must pass to become ``candidate`` (lower FID / KID is better)."""

    max_fid: float
    max_kid: float | None = None  # bound on kid_mean; None: KID not gated
    require_beats_champion: bool = True  # FID strictly below the champion's, when there is one


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the gates; ``reasons`` holds one human-readable line per failed rule (empty when passed)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


def _metric(metrics: dict[str, float], name: str, whose: str) -> float:
    """A metric that must be present and a real number: a missing or NaN metric never counts as passing."""
    if name not in metrics or metrics[name] is None:
        raise ValueError(f"{whose} metric {name!r} is missing (have {sorted(metrics)}); cannot decide the gate")
    value = float(metrics[name])
    if math.isnan(value):
        raise ValueError(f"{whose} metric {name!r} is NaN; cannot decide the gate")
    return value


def decide_gate(
    metrics: dict[str, float],
    thresholds: GateThresholds,
    champion_metrics: dict[str, float] | None,
) -> GateDecision:
    """Pass iff fid ≤ max_fid, kid_mean ≤ max_kid (when set) and, if required and a champion exists, fid < its fid.

    Raises ``ValueError`` when a metric a rule needs is missing or NaN (the candidate's, or the champion's fid).
    """
    reasons: list[str] = []
    fid = _metric(metrics, "fid", "candidate")
    if fid > thresholds.max_fid:
        reasons.append(f"fid {fid:.4g} is above the limit {thresholds.max_fid:.4g}")
    if thresholds.max_kid is not None:
        kid = _metric(metrics, "kid_mean", "candidate")
        if kid > thresholds.max_kid:
            reasons.append(f"kid_mean {kid:.4g} is above the limit {thresholds.max_kid:.4g}")
    if thresholds.require_beats_champion and champion_metrics is not None:
        champion_fid = _metric(champion_metrics, "fid", "champion")
        if not fid < champion_fid:
            reasons.append(f"fid {fid:.4g} does not beat the champion's fid {champion_fid:.4g}")
    return GateDecision(passed=not reasons, reasons=reasons)


def _is_error(error: MlflowException, *codes: int) -> bool:
    return error.error_code in {ErrorCode.Name(code) for code in codes}


def _run_and_model_id(client: MlflowClient, model_uri: str) -> tuple[str | None, str | None]:
    """The source run and logged-model id behind ``runs:/RUN/PATH`` or ``models:/<model_id>`` URIs."""
    if model_uri.startswith("runs:/"):
        return model_uri.removeprefix("runs:/").split("/", 1)[0], None
    if model_uri.startswith("models:/m-") and "/" not in model_uri.removeprefix("models:/"):
        model_id = model_uri.removeprefix("models:/")
        return client.get_logged_model(model_id).source_run_id, model_id
    return None, None


def register_generator(
    model_uri: str,
    *,
    name: str,
    metrics: dict[str, float],
    tags: dict[str, str],
    client: MlflowClient,
) -> ModelVersion:
    """Register ``model_uri`` (``ModelInfo.model_uri``) as a new version of ``name``, tagged, and wait until READY.

    Does what ``mlflow.register_model`` does, but through ``client`` (``mlflow.register_model`` always uses the
    global tracking URI). The version gets ``tags`` plus one ``metric.<name>`` tag per metric, so later gates can
    compare versions without looking their runs up. Returns the READY version.
    """
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if not _is_error(error, RESOURCE_ALREADY_EXISTS):
            raise
    run_id, model_id = _run_and_model_id(client, model_uri)
    all_tags = {key: str(value) for key, value in tags.items()}
    all_tags.update({f"{METRIC_TAG_PREFIX}{key}": repr(float(value)) for key, value in metrics.items()})
    version = client.create_model_version(
        name=name, source=model_uri, run_id=run_id, model_id=model_id, tags=all_tags, await_creation_for=0
    )
    deadline = time.monotonic() + REGISTRATION_TIMEOUT_S
    while True:
        version = client.get_model_version(name, version.version)
        status = ModelVersionStatus.from_string(version.status)
        if status == ModelVersionStatus.READY:
            break
        if status == ModelVersionStatus.FAILED_REGISTRATION:
            raise RuntimeError(f"registration of {name} version {version.version} failed: {version.status_message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} version {version.version} not READY after {REGISTRATION_TIMEOUT_S:.0f} s")
        time.sleep(0.5)
    return version


def champion_version(client: MlflowClient, name: str = MODEL_NAME) -> ModelVersion | None:
    """The version holding the ``champion`` alias; None when the model or the alias does not exist.

    MLflow 3.17 answers a missing alias with INVALID_PARAMETER_VALUE (not RESOURCE_DOES_NOT_EXIST), the same code
    as for malformed requests, so the model's alias list decides instead of the error code or message.
    """
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as error:
        try:
            model = client.get_registered_model(name)
        except MlflowException as lookup_error:
            if _is_error(lookup_error, RESOURCE_DOES_NOT_EXIST):
                return None
            raise error from lookup_error
        if CHAMPION_ALIAS not in (model.aliases or {}):
            return None
        raise


def version_metrics(client: MlflowClient, version: ModelVersion) -> dict[str, float]:
    """Latest metrics of the version's source run; its ``metric.*`` tags when it has no run (or the run is gone)."""
    if version.run_id:
        try:
            return dict(client.get_run(version.run_id).data.metrics)
        except MlflowException as error:
            if not _is_error(error, RESOURCE_DOES_NOT_EXIST):
                raise
    return {
        key.removeprefix(METRIC_TAG_PREFIX): float(value)
        for key, value in (version.tags or {}).items()
        if key.startswith(METRIC_TAG_PREFIX)
    }


def apply_gate(client: MlflowClient, version: ModelVersion, decision: GateDecision) -> None:
    """Record the gate on the version; point ``candidate`` at it only when it passed. Never touches ``champion``.

    A failed version that currently holds ``candidate`` (a re-gate) loses the alias.
    """
    name, number = version.name, version.version
    client.set_model_version_tag(name, number, GATE_STATUS_TAG, GATE_PASSED if decision.passed else GATE_FAILED)
    client.set_model_version_tag(name, number, GATE_REASONS_TAG, "; ".join(decision.reasons) or "all gates passed")
    if decision.passed:
        client.set_registered_model_alias(name, CANDIDATE_ALIAS, number)
        return
    current = client.get_model_version(name, number)
    if CANDIDATE_ALIAS in (current.aliases or []):
        client.delete_registered_model_alias(name, CANDIDATE_ALIAS)


def approve_version(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    approved_by: str,
    force: bool = False,
    reason: str | None = None,
) -> ModelVersion:
    """A person's approval: move ``champion`` to ``version`` and record who and when (UTC, ISO 8601).

    Refuses (``ApprovalRefused``) a version whose ``gate_status`` is not ``passed`` (failed, or never gated) unless
    ``force=True`` with a non-empty ``reason``, which is kept in the ``approval_forced_reason`` tag. Returns the
    version as re-read after the move.
    """
    if not approved_by or not approved_by.strip():
        raise ValueError("approved_by must name the person approving")
    version = str(version)
    current = client.get_model_version(name, version)
    gate_status = (current.tags or {}).get(GATE_STATUS_TAG)
    forced_reason = (reason or "").strip()
    tags = {APPROVED_BY_TAG: approved_by.strip(), APPROVED_AT_TAG: datetime.now(UTC).isoformat(timespec="seconds")}
    if gate_status != GATE_PASSED:
        status = f"gate_status is {gate_status!r}" if gate_status else "it has no gate_status (never gated)"
        if not force:
            raise ApprovalRefused(
                f"{name} version {version} cannot become {CHAMPION_ALIAS}: {status}; "
                "override only with force and a reason"
            )
        if not forced_reason:
            raise ApprovalRefused(f"forcing {name} version {version} ({status}) needs a non-empty reason")
        tags[APPROVAL_FORCED_REASON_TAG] = forced_reason
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return client.get_model_version(name, version)
