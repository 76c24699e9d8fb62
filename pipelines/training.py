"""The `training` pipeline: ingest → quality_filter → tag_attributes → (validate_data, drift_report) →
balance → build_dataset → real_features → train_gan (FID at intervals when configured) → (evaluate,
evaluate_fairness) → export_human_eval → deploy_gate (the shared stages: pipelines/stages.py). Only wiring lives
here; every knob is in configs/*.yaml.

Run: ``zenml pipeline run pipelines.training.training -c configs/local.yaml``
"""

from typing import Optional

from zenml import pipeline

from facegen.paths import DEFAULT_SOURCE
from pipelines.stages import evaluate_and_gate, prepare_data
from steps.train_gan import train_gan


@pipeline(name="training")
def training(
    source: str = DEFAULT_SOURCE, resolution: int = 32, seed: int = 0, fairness_gates: Optional[dict] = None
) -> None:
    """Retrain the face GAN on ``source`` (folder, zip or s3:// prefix) and gate the result for deployment.

    ``fairness_gates`` goes to both steps that use the fairness limits (the power reported, the decision made).
    """
    data = prepare_data(source, resolution, seed)
    bundle, _checkpoint = train_gan(data.training_set, data.real_features, data.balance_shares, seed=seed)
    evaluate_and_gate(bundle, data, seed, fairness_gates)
