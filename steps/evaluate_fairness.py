"""evaluate_fairness: demographics of generated faces (facegen-attributes), corrected for the classifier's errors at
the generator's resolution, vs the balancing target; charts and the by-attribute grid to MLflow."""

from pathlib import Path
from typing import Annotated, Optional

import mlflow
import numpy as np
from zenml import log_metadata, step

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.attributes_model.registry import load_attribute_classifier
from facegen.attributes_model.scoring import held_out_at
from facegen.data.shards import ShardSet
from facegen.devices import resolve_device
from facegen.gates import FairnessThresholds
from facegen.metrics.attribute_grid import attribute_grid
from facegen.metrics.fairness import fairness_metrics, fairness_report, plot_fairness
from facegen.metrics.fairness_correction import DEFAULT_BOOTSTRAP
from facegen.metrics.samples import balance_targets, evaluation_faces
from facegen.models.bundle import load_generator_bundle
from facegen.provenance.c2pa_manifest import GridProvenance
from facegen.provenance.credentials import ProvenanceConfig
from facegen.provenance.marking import FaceMarker, log_marked_grid
from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME, GENERATOR_MODEL_NAME
from facegen.registry.tracking import mlflow_client


@step
def evaluate_fairness(
    generator_bundle: Path,
    training_set: ShardSet,
    balance_shares: dict,
    num_generated: int = 10_000,
    num_real: int = 2000,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    model_name: str = ATTRIBUTES_MODEL_NAME,
    alias: str = ATTRIBUTES_ALIAS,
    seed: int = 0,
    fairness_gates: Optional[dict] = None,
) -> Annotated[dict, "fairness_report"]:
    """Classifies ``num_generated`` generated faces (a conditional generator is asked for labels stratified over the
    target) and ``num_real`` training faces (drawn as the trainer draws them, by sampling weight) with
    ``model_name@alias``; shares are corrected with its readings of held-out real faces at this resolution. Fails
    with the command to train the classifier when none is registered, or to retrain it when it was never scored
    at this resolution. ``fairness_gates`` (the pipeline's block, also deploy_gate's): the limits the report's
    ``perfect_pass_rate`` (how often a generator that draws exactly the target would pass) is computed for.
    ``samples/by_attribute.png`` is a signed PNG; without signing credentials the step fails before any work.
    """
    marker = FaceMarker(ProvenanceConfig())
    marker.check()
    # The registry of the server ZenML's MLflow tracker logs this run to.
    classifier, registered = load_attribute_classifier(mlflow_client(mlflow.get_tracking_uri()), model_name, alias)
    version = registered.version
    device = resolve_device()
    generator = load_generator_bundle(generator_bundle, device=device)
    resolution = int(generator.resolution)
    described = f"{model_name}@{alias} (version {version})"
    held_out = {a: held_out_at(classifier.spec, resolution, a, model=described) for a in ATTRIBUTE_VALUES}
    targets = balance_targets(balance_shares)
    sample = evaluation_faces(generator, num_generated, seed=seed + 4_000_037, targets=targets, device=device)
    weights = training_set.sample_weights
    rows = np.random.default_rng(seed).choice(len(training_set), size=num_real, p=weights / weights.sum())
    real = training_set.read_rows(rows)  # only the drawn faces are fetched
    report = fairness_report(
        classifier.predict(sample.faces).probabilities,
        targets,
        reference=classifier.predict(real).probabilities,
        requested=sample.requested,
        held_out=held_out,
        gates=FairnessThresholds.from_config(fairness_gates),
        bootstrap=bootstrap,
        seed=seed,
    )

    mlflow.log_metrics(fairness_metrics(report))
    mlflow.log_params(
        {
            "fairness_num_generated": num_generated,
            "fairness_num_real": len(real),
            "fairness_bootstrap": bootstrap,
            "fairness_resolution": resolution,
            "fairness_classifier": f"{model_name}@{alias} v{version}",
        }
    )
    mlflow.log_figure(plot_fairness(report, balance_shares), "fairness/generated_shares.png")
    mlflow.log_dict(report, "fairness/fairness_report.json")
    if set(ATTRIBUTE_VALUES) <= set(generator.label_dims):
        made_by = GridProvenance(
            GENERATOR_MODEL_NAME,
            mlflow.active_run().info.run_id,
            {"seed": seed, "requested": "every age_bin × ethnicity × gender, one face each"},
        )
        log_marked_grid(
            attribute_grid(generator, seed=seed, device=device), "samples/by_attribute.png", made_by, marker
        )
    log_metadata(metadata={"fairness": report})
    return report
