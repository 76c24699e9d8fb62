"""facegen's model registry: both registered models (names in :mod:`facegen.registry.names`), through one client.

- ``facegen-generator``: :func:`register_version` per training run, the champion comparison
  (:func:`compare_with_champion`), the gate recorded (:func:`apply_gate`, or :func:`require_human_eval` and later
  :func:`complete_human_eval_gate`), a person's approval (:func:`approve_version`).
- ``facegen-attributes``: :func:`register_version`, then :func:`apply_promotion` moves its alias.

The decisions themselves are :mod:`facegen.gates`; this module only records them. Alias ``candidate`` (passed the
automatic gates) and alias ``champion`` (approved and served, moved only by :func:`approve_version`, i.e. by a person
through ``facegen approve`` or the MLflow UI). Generator version tags: ``gate_status`` (passed / failed /
awaiting_human_eval), ``gate_reasons``, ``approved_by``, ``approved_at``, for every metric given at registration
``metric.<name>``, and what the metrics were measured under (:func:`evaluation_tags`): ``eval_protocol`` (JSON),
``eval_protocol_id``, ``label_vocabulary``; the generated faces' features are the run artifact
``evaluation/generated_features.npy``. A champion re-scored under a newer protocol gets ``rescored.<protocol id>.*``
tags (:func:`compare_with_champion`); the candidate gets ``champion_comparison``.

Everything goes through the ``MlflowClient`` passed in (built by :func:`facegen.registry.tracking.mlflow_client`),
so the caller decides which server it talks to; MLflow errors propagate, except the "does not exist" answers that
:func:`version_by_alias` turns into None.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from torch import nn

from facegen.gates import (
    APPROVAL_FORCED_REASON_TAG,
    APPROVED_BY_TAG,
    GATE_PASSED,
    GATE_STATUS_TAG,
    AttributePromotion,
    GateDecision,
    HumanEvalRequirement,
    champion_acceptable,
    decide_human_eval,
)
from facegen.metrics.comparison import (
    ChampionComparison,
    ComparisonRule,
    EvaluationProtocol,
    NotComparable,
    bootstrap_difference,
    protocol_features,
)
from facegen.metrics.features import RealFeatures
from facegen.metrics.fidelity import fidelity_from_features
from facegen.registry.model_card import write_model_card
from facegen.registry.names import ATTRIBUTES_ALIAS, CANDIDATE_ALIAS, CHAMPION_ALIAS, GENERATOR_MODEL_NAME

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from facegen.humaneval.scoring import HumanEvalResults

logger = logging.getLogger(__name__)

GATE_REASONS_TAG = "gate_reasons"
APPROVED_AT_TAG = "approved_at"
METRIC_TAG_PREFIX = "metric."
EVAL_PROTOCOL_TAG = "eval_protocol"
EVAL_PROTOCOL_ID_TAG = "eval_protocol_id"
LABEL_VOCABULARY_TAG = "label_vocabulary"
CHAMPION_COMPARISON_TAG = "champion_comparison"
#: ``rescored.<protocol id>.<field>``: a version scored again under another protocol than its own.
RESCORED_TAG_PREFIX = "rescored."
#: Run artifact holding the features of a version's generated faces under its own protocol (float32 N×D .npy).
GENERATED_FEATURES_ARTIFACT = "evaluation/generated_features.npy"
#: Figures recorded for a re-scored version, as under its own protocol's ``metric.*`` tags.
RESCORED_METRICS = ("fid", "kid_mean", "kid_std")

GATE_FAILED = "failed"
#: ``gate_status`` of a version that passed the automatic gates and waits for :func:`complete_human_eval_gate`.
AWAITING_HUMAN_EVAL = "awaiting_human_eval"
MIN_FOOL_RATE_TAG = "human_eval.required.min_fool_rate"
MIN_WIN_RATE_TAG = "human_eval.required.min_win_rate"
MIN_RATINGS_TAG = "human_eval.required.min_ratings"
#: Attribute-model version tags written by :func:`apply_promotion`.
BEATS_BASELINE_TAG = "beats_baseline"
PROMOTION_REASONS_TAG = "promotion_reasons"

#: Seconds :func:`register_version` waits for a new version to become READY.
REGISTRATION_TIMEOUT_S = 300.0


class ApprovalRefused(Exception):
    """A version may not become champion: it did not pass the gates and the approval was not a reasoned override."""


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


def register_version(
    model_uri: str,
    *,
    name: str,
    tags: Mapping[str, object],
    client: MlflowClient,
    metrics: Mapping[str, float] | None = None,
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
    all_tags.update({f"{METRIC_TAG_PREFIX}{key}": repr(float(value)) for key, value in (metrics or {}).items()})
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


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``name@alias``; None when the model or the alias does not exist (any other error raises).

    MLflow 3.17 answers a missing alias with INVALID_PARAMETER_VALUE (not RESOURCE_DOES_NOT_EXIST), the same code
    as for malformed requests, so the model's alias list decides instead of the error code or message.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        try:
            model = client.get_registered_model(name)
        except MlflowException as lookup_error:
            if _is_error(lookup_error, RESOURCE_DOES_NOT_EXIST):
                return None
            raise error from lookup_error
        if alias not in (model.aliases or {}):
            return None
        raise


def champion_version(client: MlflowClient, name: str = GENERATOR_MODEL_NAME) -> ModelVersion | None:
    """The generator version being served (``champion``); None before the first approval."""
    return version_by_alias(client, name, CHAMPION_ALIAS)


def load_version_pyfunc(client: MlflowClient, version: ModelVersion) -> PyFuncModel:
    """A registered version's pyfunc, downloaded through ``client``.

    ``mlflow.pyfunc.load_model("models:/…")`` would resolve the name in the process-global registry instead.
    """
    uri = client.get_model_version_download_uri(version.name, version.version)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=client.tracking_uri)
        return mlflow.pyfunc.load_model(local)


def evaluation_tags(protocol: EvaluationProtocol, label_vocabulary: Mapping[str, list[str]]) -> dict[str, str]:
    """What a version's metrics were measured under and what its label indices mean, as version tags."""
    return {
        EVAL_PROTOCOL_TAG: protocol.to_json(),
        EVAL_PROTOCOL_ID_TAG: protocol.id,
        LABEL_VOCABULARY_TAG: json.dumps(dict(label_vocabulary), sort_keys=True),
    }


def log_generated_features(
    client: MlflowClient, run_id: str, features: np.ndarray, artifact_path: str = GENERATED_FEATURES_ARTIFACT
) -> str:
    """Store generated-face features as a run artifact (``.npy``, no pickle) and return its ``runs:/`` URI.

    A later gate compares against a version through these, without drawing its faces again.
    """
    path = PurePosixPath(artifact_path)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        np.save(local, np.asarray(features, dtype=np.float32), allow_pickle=False)
        client.log_artifact(run_id, str(local), str(path.parent))
    return f"runs:/{run_id}/{artifact_path}"


def _read_features(client: MlflowClient, uri: str) -> np.ndarray:
    run_id, path = uri.removeprefix("runs:/").split("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        return np.load(client.download_artifacts(run_id, path, tmp), allow_pickle=False)


def stored_features(client: MlflowClient, version: ModelVersion, protocol: EvaluationProtocol) -> np.ndarray | None:
    """The version's generated-face features under ``protocol`` when recorded (its own evaluation or a re-score).

    None when there are none, or when they cannot be read any more (the caller re-scores; a warning says why).
    """
    tags = version.tags or {}
    if tags.get(EVAL_PROTOCOL_ID_TAG) == protocol.id and version.run_id:
        uri = f"runs:/{version.run_id}/{GENERATED_FEATURES_ARTIFACT}"
    else:
        uri = tags.get(f"{RESCORED_TAG_PREFIX}{protocol.id}.features")
    if uri is None:
        return None
    try:
        features = _read_features(client, uri)
    except (MlflowException, OSError) as error:
        logger.warning(
            "%s v%s: features under protocol %s unreadable at %s (%s); re-scoring",
            version.name,
            version.version,
            protocol.id,
            uri,
            error,
        )
        return None
    if features.ndim != 2 or len(features) != protocol.num_generated:
        raise ValueError(
            f"{uri} holds features of shape {features.shape}, protocol {protocol.id} scores "
            f"{protocol.num_generated} faces"
        )
    return features


def load_registered_generator(
    client: MlflowClient, version: ModelVersion, device: str | torch.device = "cpu"
) -> nn.Module:
    """A version's generator rebuilt from its registered model files, through the pyfunc the service loads."""
    generator = load_version_pyfunc(client, version).unwrap_python_model().generator
    return generator.to(device).eval()


def rescore_version(
    client: MlflowClient,
    version: ModelVersion,
    protocol: EvaluationProtocol,
    real: RealFeatures,
    *,
    weights_path: Path,
    record_run_id: str,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Score a registered version under ``protocol`` from its model, and record it so later gates need not.

    Its features go to ``record_run_id`` (the comparing run, which certainly exists); the version gets
    ``rescored.<id>.eval_protocol``, ``.features`` (their URI) and the figures of :data:`RESCORED_METRICS`.
    Raises :class:`NotComparable` when its model does not load or cannot draw the protocol's faces.
    """
    try:
        generator = load_registered_generator(client, version, device)
    except Exception as error:  # whatever keeps the model from loading, it cannot be scored: fail closed
        raise NotComparable(f"does not load from the registry ({type(error).__name__}: {error})") from error
    _, features = protocol_features(generator, protocol, weights_path=weights_path, device=device)
    figures = fidelity_from_features(
        features,
        real.features,
        kid_subset_size=protocol.kid_subset_size,
        kid_subsets=protocol.kid_subsets,
        device=device,
    )
    artifact = f"evaluation/rescored/{version.name}-v{version.version}-{protocol.id}/generated_features.npy"
    prefix = f"{RESCORED_TAG_PREFIX}{protocol.id}."
    tags = {
        f"{prefix}eval_protocol": protocol.to_json(),
        f"{prefix}features": log_generated_features(client, record_run_id, features, artifact),
        **{f"{prefix}{name}": repr(figures[name]) for name in RESCORED_METRICS},
    }
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)
    return features


def compare_with_champion(
    client: MlflowClient,
    champion: ModelVersion,
    candidate_features: np.ndarray,
    protocol: EvaluationProtocol,
    real: RealFeatures,
    rule: ComparisonRule,
    *,
    weights_path: Path,
    record_run_id: str,
    device: str | torch.device = "cpu",
) -> ChampionComparison:
    """The candidate against ``champion`` under the candidate's protocol, by ``rule``.

    The champion's features are the stored ones when it was scored under this protocol before (its own evaluation
    or an earlier re-score), else it is re-scored from its registered model (:func:`rescore_version`); when that is
    impossible the comparison says "not comparable" and why.
    """
    protocol.check_real(real)
    if len(candidate_features) != protocol.num_generated:
        raise ValueError(
            f"{len(candidate_features)} candidate features, protocol {protocol.id} scores "
            f"{protocol.num_generated} faces"
        )
    champion_protocol = (champion.tags or {}).get(EVAL_PROTOCOL_ID_TAG)
    features = stored_features(client, champion, protocol)
    rescored = features is None
    if rescored:
        try:
            features = rescore_version(
                client, champion, protocol, real, weights_path=weights_path, record_run_id=record_run_id, device=device
            )
        except NotComparable as why:
            return ChampionComparison(champion.version, protocol.id, champion_protocol, False, not_comparable=str(why))
    difference = bootstrap_difference(rule, candidate_features, features, real.features)
    return ChampionComparison(champion.version, protocol.id, champion_protocol, rescored, difference)


def record_comparison(client: MlflowClient, version: ModelVersion, comparison: ChampionComparison) -> None:
    """The comparison on the candidate version (``champion_comparison``, JSON), whatever the gate decides."""
    client.set_model_version_tag(
        version.name, version.version, CHAMPION_COMPARISON_TAG, json.dumps(comparison.record(), sort_keys=True)
    )


def apply_gate(
    client: MlflowClient,
    version: ModelVersion,
    decision: GateDecision,
    human_eval: HumanEvalRequirement | None = None,
) -> None:
    """Record the gate on the version; point ``candidate`` at it only when it passed. Never touches ``champion``.

    A passed version with a ``human_eval`` requirement waits for raters instead (:func:`require_human_eval`).
    A failed version that currently holds ``candidate`` (a re-gate) loses the alias.
    """
    if decision.passed and human_eval is not None:
        require_human_eval(client, version, human_eval)
        return
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

    The version must be acceptable as champion (:func:`facegen.gates.champion_acceptable`, the rule the service
    applies too) with the tags this approval writes: ``force=True`` with a non-empty ``reason`` (kept in the
    ``approval_forced_reason`` tag) overrides a ``gate_status`` that is not ``passed`` (failed, or never gated);
    otherwise ``ApprovalRefused``. Returns the version as re-read after the move.
    """
    if not approved_by or not approved_by.strip():
        raise ValueError("approved_by must name the person approving")
    version = str(version)
    current = client.get_model_version(name, version)
    forced_reason = (reason or "").strip()
    tags = {APPROVED_BY_TAG: approved_by.strip(), APPROVED_AT_TAG: datetime.now(UTC).isoformat(timespec="seconds")}
    if (current.tags or {}).get(GATE_STATUS_TAG) != GATE_PASSED and force:
        if not forced_reason:
            raise ApprovalRefused(f"forcing {name} version {version} needs a non-empty reason")
        tags[APPROVAL_FORCED_REASON_TAG] = forced_reason
    acceptance = champion_acceptable({**(current.tags or {}), **tags})
    if not acceptance.ok:
        raise ApprovalRefused(
            f"{name} version {version} cannot become {CHAMPION_ALIAS}: {acceptance.reason}; "
            "override only with force and a reason"
        )
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return client.get_model_version(name, version)


def human_eval_requirement_tags(requirement: HumanEvalRequirement) -> dict[str, str]:
    """The requirement as version tags (a rate left ungated gets no tag)."""
    tags = {MIN_RATINGS_TAG: str(requirement.min_ratings)}
    if requirement.min_fool_rate is not None:
        tags[MIN_FOOL_RATE_TAG] = repr(float(requirement.min_fool_rate))
    if requirement.min_win_rate is not None:
        tags[MIN_WIN_RATE_TAG] = repr(float(requirement.min_win_rate))
    return tags


def human_eval_requirement_from_tags(tags: Mapping[str, str]) -> HumanEvalRequirement:
    """The requirement recorded by :func:`require_human_eval`; ``ValueError`` when missing or malformed."""
    if MIN_RATINGS_TAG not in tags:
        raise ValueError(f"no {MIN_RATINGS_TAG} tag: the version records no human-eval requirement")

    def rate(tag: str) -> float | None:
        return float(tags[tag]) if tag in tags else None

    try:
        return HumanEvalRequirement(rate(MIN_FOOL_RATE_TAG), rate(MIN_WIN_RATE_TAG), int(tags[MIN_RATINGS_TAG]))
    except ValueError as error:
        recorded = {key: value for key, value in tags.items() if key.startswith("human_eval.required.")}
        raise ValueError(f"malformed human-eval requirement tags {recorded}: {error}") from error


def require_human_eval(client: MlflowClient, version: ModelVersion, requirement: HumanEvalRequirement) -> None:
    """Hold a version whose automatic gates passed until raters' results arrive; never sets ``candidate``.

    Call it instead of :func:`apply_gate` when the automatic decision passed. Records ``requirement`` as tags, sets
    ``gate_status`` = ``awaiting_human_eval`` with the reason in ``gate_reasons``, and takes ``candidate`` away
    should the version already hold it; :func:`approve_version` refuses the version meanwhile (not ``passed``).
    Raises ``ValueError`` for a version whose gate_status is ``failed``.
    """
    name, number = version.name, version.version
    current = client.get_model_version(name, number)
    if (current.tags or {}).get(GATE_STATUS_TAG) == GATE_FAILED:
        raise ValueError(
            f"{name} version {number}: gate_status is 'failed'; only a version that passed the automatic gates can "
            "await human evaluation"
        )
    tags = human_eval_requirement_tags(requirement)
    for key, value in tags.items():
        client.set_model_version_tag(name, number, key, value)
    for stale in ({MIN_FOOL_RATE_TAG, MIN_WIN_RATE_TAG} & set(current.tags or {})) - set(tags):  # an earlier one's
        client.delete_model_version_tag(name, number, stale)
    client.set_model_version_tag(name, number, GATE_STATUS_TAG, AWAITING_HUMAN_EVAL)
    client.set_model_version_tag(
        name,
        number,
        GATE_REASONS_TAG,
        f"automatic gates passed; awaiting human evaluation ({requirement.describe()}): "
        f"rate the human_eval set, then run `facegen human-eval import FILE... --version {number}`",
    )
    if CANDIDATE_ALIAS in (current.aliases or []):
        client.delete_registered_model_alias(name, CANDIDATE_ALIAS)


def complete_human_eval_gate(
    client: MlflowClient, version: ModelVersion, results: HumanEvalResults
) -> GateDecision | None:
    """Decide an awaiting version against its recorded requirement and apply the decision (``candidate`` if passed).

    Returns None, changing only the model card, for a version that is not ``awaiting_human_eval``. A passing
    version older than the current ``candidate`` is marked passed but does not take the alias back from the newer
    one. The version's model card is written again either way: its human-evaluation section shows the results.
    """
    current = client.get_model_version(version.name, version.version)
    tags = current.tags or {}
    if tags.get(GATE_STATUS_TAG) != AWAITING_HUMAN_EVAL:
        _refresh_model_card(client, current)
        return None
    decision = decide_human_eval(results, human_eval_requirement_from_tags(tags))
    holder = (client.get_registered_model(current.name).aliases or {}).get(CANDIDATE_ALIAS)
    if decision.passed and holder is not None and int(holder) > int(current.version):
        # Raters were slower than the next run: a newer version already passed, candidate stays with it.
        client.set_model_version_tag(current.name, current.version, GATE_STATUS_TAG, GATE_PASSED)
        client.set_model_version_tag(
            current.name,
            current.version,
            GATE_REASONS_TAG,
            f"all gates passed; {CANDIDATE_ALIAS} stays on newer version {holder}",
        )
        _refresh_model_card(client, current)
        return decision
    apply_gate(client, current, decision)
    _refresh_model_card(client, current)
    return decision


def _refresh_model_card(client: MlflowClient, version: ModelVersion) -> None:
    """Re-render the version's card with what is recorded now; a version without a source run has no card."""
    if version.run_id:
        write_model_card(client, version)


def apply_promotion(
    client: MlflowClient, version: ModelVersion, promotion: AttributePromotion, alias: str = ATTRIBUTES_ALIAS
) -> None:
    """Record the baseline comparison on an attribute-model version and move ``alias`` to it iff it is promoted."""
    name, number = version.name, version.version
    client.set_model_version_tag(name, number, BEATS_BASELINE_TAG, str(promotion.beats_baseline))
    if promotion.reasons:
        client.set_model_version_tag(name, number, PROMOTION_REASONS_TAG, "; ".join(promotion.reasons))
    if promotion.promote:
        client.set_registered_model_alias(name, alias, number)
