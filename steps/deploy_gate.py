"""deploy_gate: register the generator as a new version; alias `candidate` only if it passes the gates.

It never moves `champion`: a person does, in the MLflow UI or with `facegen approve VERSION --by NAME`.
The comparison with the champion (same evaluation protocol, re-scoring the champion when the protocol changed,
bootstrap rule) is library code: facegen.registry.model_registry.compare_with_champion.
"""

from pathlib import Path
from typing import Annotated, Optional

import mlflow
import numpy as np
from mlflow import MlflowClient
from zenml import get_step_context, log_metadata, step

from facegen.devices import resolve_device
from facegen.humaneval.gate import HumanEvalRequirement, require_human_eval
from facegen.metrics.comparison import ComparisonRule, EvaluationProtocol
from facegen.metrics.fairness import (
    DEFAULT_MIN_REPRESENTATION_RATIO,
    FairnessThresholds,
    fairness_tags,
    fairness_violations,
)
from facegen.metrics.features import REAL_FEATURES_FILE, RealFeatures
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.models.bundle import load_generator_bundle
from facegen.models.conditioning import label_vocabulary
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_registry import (
    GateDecision,
    GateThresholds,
    apply_gate,
    champion_version,
    compare_with_champion,
    decide_gate,
    evaluation_tags,
    log_generated_features,
    record_comparison,
    register_generator,
)

#: Evaluation numbers copied onto the version as ``metric.<name>`` tags: quality, memorisation and speed side by side.
VERSION_METRICS = ("fid", "kid_mean", "kid_std", "precision", "recall", "is_mean", "near_copy_share",
                   "latency_p50_ms", "latency_p95_ms")  # fmt: skip


@step
def deploy_gate(
    generator_bundle: Path,
    metrics: dict,
    generated_features: np.ndarray,
    eval_protocol: dict,
    real_features: Path,
    fairness_report: dict,
    human_eval_set: Path,
    max_fid: float = 400.0,
    max_kid: Optional[float] = None,
    require_beats_champion: bool = True,
    champion_comparison: Optional[dict] = None,
    max_tv: Optional[dict[str, float]] = None,
    min_representation_ratio: Optional[float] = DEFAULT_MIN_REPRESENTATION_RATIO,
    human_eval_gate: Optional[dict] = None,
    model_name: str = "facegen-generator",
) -> Annotated[dict, "gate_decision"]:
    """Registers every trained generator (for the record) and states the gate decision on the version.

    ``human_eval_set`` is taken so the gate runs after the export; the version links to it in MLflow.
    ``require_beats_champion``: with a champion, the candidate must be significantly better under its own
    evaluation protocol, by the rule ``champion_comparison`` (``{metric, confidence, bootstrap, seed}``; None: the
    defaults of ``ComparisonRule``); a champion that cannot be scored under the protocol is "not comparable".
    Fairness gates: ``max_tv`` (attribute → largest TV distance to the balancing target; None: the defaults,
    gender 0.05, age_bin and ethnicity 0.10; {}: fairness not gated) and ``min_representation_ratio``.
    ``human_eval_gate`` (``{min_fool_rate, min_win_rate, min_ratings}``; None: not required): a version that passes
    the automatic gates waits (``awaiting_human_eval``) for ``facegen human-eval import`` before it becomes
    ``candidate``. The win rate is required only when there is a champion to be compared with.
    """
    client = MlflowClient()
    run_id = mlflow.active_run().info.run_id
    protocol = EvaluationProtocol(**eval_protocol)
    rule = ComparisonRule(**(champion_comparison or {}))
    champion = champion_version(client, model_name)
    comparison = None
    if champion is not None and require_beats_champion:
        comparison = compare_with_champion(
            client, champion, generated_features, protocol, RealFeatures.load(real_features / REAL_FEATURES_FILE), rule,
            weights_path=ensure_inception_weights(), record_run_id=run_id,
            device=resolve_device(),
        )  # fmt: skip
    decision = decide_gate(metrics, GateThresholds(max_fid, max_kid, require_beats_champion), comparison)
    fairness_gates = FairnessThresholds(**({} if max_tv is None else {"max_tv": max_tv}),
                                        min_representation_ratio=min_representation_ratio)  # fmt: skip
    unfair = fairness_violations(fairness_report, fairness_gates)
    decision = GateDecision(passed=decision.passed and not unfair, reasons=decision.reasons + unfair)
    model_info = log_generator_model(generator_bundle)
    log_generated_features(client, run_id, generated_features)
    vocabulary = label_vocabulary(load_generator_bundle(generator_bundle).label_dims)
    context = get_step_context()
    version = register_generator(
        model_info.model_uri,
        name=model_name,
        metrics={key: metrics[key] for key in VERSION_METRICS},
        tags={"zenml_pipeline_run": context.pipeline_run.name, "is_network": metrics["is_network"],
              "latency_device": metrics["latency_device"],
              "human_eval_set": f"runs:/{run_id}/human_eval",
              **evaluation_tags(protocol, vocabulary), **fairness_tags(fairness_report)},
        client=client,
    )
    if comparison is not None:
        record_comparison(client, version, comparison)
    requirement = _human_eval_requirement(human_eval_gate, has_champion=champion is not None)
    if decision.passed and requirement is not None:
        require_human_eval(client, version, requirement)
    else:
        apply_gate(client, version, decision)
    status = client.get_model_version(model_name, version.version).tags.get("gate_status")
    outcome = {
        "model_name": model_name,
        "version": version.version,
        "passed": decision.passed,
        "gate_status": status,
        "reasons": decision.reasons,
        "champion_version": champion.version if champion else "none",
        "eval_protocol_id": protocol.id,
        "champion_comparison": comparison.record() if comparison else None,  # None: no champion or not required
    }
    mlflow.log_dict(outcome, "deploy_gate.json")
    log_metadata(metadata=outcome)
    return outcome


def _human_eval_requirement(config: Optional[dict], *, has_champion: bool) -> Optional[HumanEvalRequirement]:
    """The configured requirement, without the win rate when no champion exists (no pairs to win); None if empty."""
    if not config:
        return None
    settings = dict(config)
    if not has_champion:
        settings.pop("min_win_rate", None)
    if settings.get("min_fool_rate") is None and settings.get("min_win_rate") is None:
        return None
    return HumanEvalRequirement(**settings)
