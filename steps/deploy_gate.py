"""deploy_gate: register the generator as a new version; alias `candidate` only if it passes the gates.

It never moves `champion`: a person does, in the MLflow UI or with `facegen approve VERSION --by NAME`.
The decision is facegen.gates.decide_gate (quality, champion comparison, fairness); the comparison with the champion
(same evaluation protocol, re-scoring the champion when the protocol changed, bootstrap rule) and recording the
decision on the version are facegen.registry.model_registry.
"""

from pathlib import Path
from typing import Annotated, Optional

import mlflow
import numpy as np
from zenml import get_step_context, log_metadata, step

from facegen.devices import resolve_device
from facegen.gates import (
    FairnessThresholds,
    GateThresholds,
    HumanEvalRequirement,
    decide_gate,
)
from facegen.metrics.comparison import ComparisonRule, EvaluationProtocol
from facegen.metrics.fairness import fairness_metrics, fairness_tags
from facegen.metrics.features import REAL_FEATURES_FILE, RealFeatures
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.models.bundle import load_generator_bundle
from facegen.models.conditioning import label_vocabulary
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_card import DATA_SOURCE_PARAM, FEEDBACK_SOURCE_PARAM, MANIFEST_HASH_PARAM, write_model_card
from facegen.registry.model_registry import (
    GATE_STATUS_TAG,
    apply_gate,
    champion_version,
    compare_with_champion,
    evaluation_tags,
    log_generated_features,
    record_comparison,
    register_version,
)
from facegen.registry.names import GENERATOR_MODEL_NAME
from facegen.registry.run_outcome import record_cached_figures
from facegen.registry.tracking import mlflow_client

#: Evaluation numbers copied onto the version as ``metric.<name>`` tags: quality, memorisation and speed side by side.
VERSION_METRICS = (
    "fid",
    "fid_inf",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "is_mean",
    "near_copy_share",
    "latency_p50_ms",
    "latency_p95_ms",
)


@step
def deploy_gate(
    generator_bundle: Path,
    metrics: dict,
    generated_features: np.ndarray,
    eval_protocol: dict,
    real_features: Path,
    fairness_report: dict,
    human_eval_set: Path,
    max_fid_inf: float = 400.0,
    max_kid: Optional[float] = None,
    require_beats_champion: bool = True,
    champion_comparison: Optional[dict] = None,
    fairness_gates: Optional[dict] = None,
    human_eval_gate: Optional[dict] = None,
    model_name: str = GENERATOR_MODEL_NAME,
) -> Annotated[dict, "gate_decision"]:
    """Registers every trained generator (for the record) and states the gate decision on the version.

    ``human_eval_set`` is taken so the gate runs after the export; the version links to it in MLflow.
    ``max_fid_inf`` bounds FID∞, not FID at N: FID at N falls with the number of faces, so its limit would depend on
    the evaluate step's ``num_generated``.
    ``require_beats_champion``: with a champion, the candidate must be significantly better under its own
    evaluation protocol, by the rule ``champion_comparison`` (``{metric, confidence, bootstrap, seed}``; None: the
    defaults of ``ComparisonRule``); a champion that cannot be scored under the protocol is "not comparable".
    ``fairness_gates``: the pipeline's ``{max_tv, min_representation_ratio}`` block, the same one evaluate_fairness
    reports the gate's power for (``FairnessThresholds.from_config``: None → gender 0.05, age_bin and ethnicity
    0.10, ratio 0.8; ``{max_tv: {}}``: fairness not gated).
    ``human_eval_gate`` (``{min_fool_rate, min_win_rate, min_ratings}``; None: not required): a version that passes
    the automatic gates waits (``awaiting_human_eval``) for ``facegen human-eval import`` before it becomes
    ``candidate``. The win rate is required only when there is a champion to be compared with.
    """
    client = mlflow_client(mlflow.get_tracking_uri())  # the server ZenML's MLflow tracker logs this run to
    run_id = mlflow.active_run().info.run_id
    protocol = EvaluationProtocol(**eval_protocol)
    rule = ComparisonRule(**(champion_comparison or {}))
    champion = champion_version(client, model_name)
    comparison = None
    if champion is not None and require_beats_champion:
        comparison = compare_with_champion(
            client,
            champion,
            generated_features,
            protocol,
            RealFeatures.load(real_features / REAL_FEATURES_FILE),
            rule,
            weights_path=ensure_inception_weights(),
            record_run_id=run_id,
            device=resolve_device(),
        )
    fairness = FairnessThresholds.from_config(fairness_gates)
    thresholds = GateThresholds(max_fid_inf, max_kid, require_beats_champion, fairness)
    decision = decide_gate(metrics, thresholds, comparison, fairness_report)
    model_info = log_generator_model(generator_bundle)
    log_generated_features(client, run_id, generated_features)
    vocabulary = label_vocabulary(load_generator_bundle(generator_bundle).label_dims)
    context = get_step_context()
    ingest = context.pipeline_run.steps["ingest"]  # the data's identity, for the model card
    feedback_source = ingest.config.parameters.get("feedback_source")
    mlflow.log_params(
        {
            DATA_SOURCE_PARAM: ingest.config.parameters["source"],
            MANIFEST_HASH_PARAM: ingest.outputs["manifest"][0].content_hash,
            **({FEEDBACK_SOURCE_PARAM: feedback_source} if feedback_source else {}),
        }
    )
    version = register_version(
        model_info.model_uri,
        name=model_name,
        metrics={key: metrics[key] for key in VERSION_METRICS},
        tags={
            "zenml_pipeline_run": context.pipeline_run.name,
            "is_network": metrics["is_network"],
            "latency_device": metrics["latency_device"],
            "human_eval_set": f"runs:/{run_id}/human_eval",
            **evaluation_tags(protocol, vocabulary),
            **fairness_tags(fairness_report),
        },
        client=client,
    )
    if comparison is not None:
        record_comparison(client, version, comparison)
    requirement = HumanEvalRequirement.from_config(human_eval_gate, has_champion=champion is not None)
    apply_gate(client, version, decision, human_eval=requirement)
    write_model_card(client, version)
    status = client.get_model_version(model_name, version.version).tags.get(GATE_STATUS_TAG)
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
    record_cached_figures(client, run_id, metrics | fairness_metrics(fairness_report))
    mlflow.log_dict(outcome, "deploy_gate.json")
    log_metadata(metadata=outcome)
    return outcome
