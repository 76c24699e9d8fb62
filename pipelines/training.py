"""The `training` pipeline: ingest → quality_filter → tag_attributes → (validate_data, drift_report) →
balance → build_dataset → real_features → train_gan (FID at intervals when configured) → (evaluate,
evaluate_fairness) → export_human_eval → deploy_gate. Only wiring lives here; every knob is in configs/*.yaml.

Run: ``zenml pipeline run pipelines.training.training -c configs/local.yaml``
"""

from typing import Optional

from zenml import pipeline

from facegen.paths import DEFAULT_SOURCE
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
from steps.train_gan import train_gan
from steps.validate_data import validate_data


@pipeline(name="training")
def training(
    source: str = DEFAULT_SOURCE, resolution: int = 32, seed: int = 0, fairness_gates: Optional[dict] = None
) -> None:
    """Retrain the face GAN on ``source`` (folder, zip or s3:// prefix) and gate the result for deployment.

    ``fairness_gates`` goes to both steps that use the fairness limits (the power reported, the decision made).
    """
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
    bundle, _checkpoint = train_gan(training_set, real, balance_shares, seed=seed)
    metrics, generated_features, eval_protocol = evaluate(bundle, real, balance_shares, seed=seed)
    fairness = evaluate_fairness(bundle, training_set, balance_shares, seed=seed, fairness_gates=fairness_gates)
    human_eval = export_human_eval(bundle, training_set, balance_shares, seed=seed)
    deploy_gate(
        bundle, metrics, generated_features, eval_protocol, real, fairness, human_eval, fairness_gates=fairness_gates
    )
