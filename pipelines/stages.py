"""The stages every training route shares, called inside a pipeline: the data up to its real features, and the
evaluation of a generator bundle up to the deploy gate. pipelines/training.py trains in between;
pipelines/training_from_job.py picks a finished training job up instead. Only wiring lives here."""

from dataclasses import dataclass
from typing import Any, Optional

from steps.balance import balance
from steps.build_dataset import build_dataset
from steps.deploy_gate import deploy_gate
from steps.drift_report import drift_report
from steps.evaluate import evaluate
from steps.evaluate_fairness import evaluate_fairness
from steps.export_human_eval import export_human_eval
from steps.ingest import ingest
from steps.quality_filter import quality_filter
from steps.real_features import real_features
from steps.tag_attributes import tag_attributes
from steps.validate_data import validate_data


@dataclass(frozen=True)
class TrainingData:
    """The outputs of the data stages (ZenML step outputs) the training and evaluation steps take."""

    training_set: Any  # the shard set: faces, labels and sampling weights in one artifact
    real_features: Any
    balance_shares: Any


def prepare_data(source: str, resolution: int, seed: int) -> TrainingData:
    """ingest → quality_filter → tag_attributes → (validate_data, drift_report) → balance → build_dataset →
    real_features."""
    manifest = ingest(source=source, seed=seed)
    screened, quality_settings = quality_filter(manifest)
    tagged = tag_attributes(screened)
    validate_data(tagged, quality_settings)  # held to the thresholds that screened it
    drift_report(tagged)
    # Balancing waits for the data checks, so a failing suite (on_failure: fail) stops the run before training.
    plan, balance_shares = balance(tagged, seed=seed, after=["validate_data", "drift_report"])
    training_set = build_dataset(plan, resolution=resolution)
    # Cached per shard set (its content hash): a new generator only has its own faces' features extracted.
    real = real_features(training_set, seed=seed)
    return TrainingData(training_set, real, balance_shares)


def evaluate_and_gate(bundle: Any, data: TrainingData, seed: int, fairness_gates: Optional[dict]) -> None:
    """(evaluate, evaluate_fairness) → export_human_eval → deploy_gate: the version registered, gated."""
    metrics, generated_features, eval_protocol = evaluate(bundle, data.real_features, data.balance_shares, seed=seed)
    fairness = evaluate_fairness(
        bundle, data.training_set, data.balance_shares, seed=seed, fairness_gates=fairness_gates
    )
    human_eval = export_human_eval(bundle, data.training_set, data.balance_shares, seed=seed)
    deploy_gate(
        bundle,
        metrics,
        generated_features,
        eval_protocol,
        data.real_features,
        fairness,
        human_eval,
        fairness_gates=fairness_gates,
    )
