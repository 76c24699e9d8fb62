"""evaluate_fairness: demographics of generated faces (facegen-attributes) vs the balancing target; chart to MLflow."""

from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
import torch
from zenml import log_metadata, step

from facegen.attributes_model import MODEL_NAME, PRODUCTION_ALIAS
from facegen.attributes_model.registry import load_attribute_classifier, resolve_version
from facegen.metrics.fairness import fairness_metrics, fairness_report, plot_fairness
from facegen.metrics.samples import balance_targets, evaluation_faces
from facegen.models.bundle import load_generator_bundle


@step
def evaluate_fairness(
    generator_bundle: Path,
    packed_dataset: np.ndarray,
    balance_shares: dict,
    num_generated: int = 2000,
    num_real: int = 2000,
    model_name: str = MODEL_NAME,
    alias: str = PRODUCTION_ALIAS,
    seed: int = 0,
) -> Annotated[dict, "fairness_report"]:
    """Classifies ``num_generated`` generated and ``num_real`` training faces (as trained on, repeats included)
    with ``model_name@alias``; fails with the command to train the classifier when none is registered.

    A conditional generator is asked for labels drawn from the target; the report then has conditional accuracy.
    """
    classifier = load_attribute_classifier(model_name, alias)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = load_generator_bundle(generator_bundle, device=device)
    targets = balance_targets(balance_shares)
    generated, requested = evaluation_faces(generator, num_generated, seed=seed + 4_000_037, targets=targets,
                                            device=device)  # fmt: skip
    rng = np.random.default_rng(seed)
    real = packed_dataset[rng.choice(len(packed_dataset), size=min(num_real, len(packed_dataset)), replace=False)]
    predicted = classifier.predict(generated).labels
    reference = classifier.predict(real).labels
    report = fairness_report(predicted, targets, reference=reference, requested=requested)

    mlflow.log_metrics(fairness_metrics(report))
    mlflow.log_params({"fairness_num_generated": num_generated, "fairness_num_real": len(real),
                       "fairness_classifier": f"{model_name}@{alias} v{resolve_version(model_name, alias).version}"})
    mlflow.log_figure(plot_fairness(report, balance_shares), "fairness/generated_shares.png")
    mlflow.log_dict(report, "fairness/fairness_report.json")
    log_metadata(metadata={"fairness": report})
    return report
