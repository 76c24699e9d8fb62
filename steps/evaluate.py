"""evaluate: the trained generator scored by facegen.metrics.evaluation (fidelity, FID∞, Inception Score,
memorisation, latency from one feature pass over its generated faces), every figure logged to MLflow.

The faces are drawn and scored under an evaluation protocol (facegen.metrics.comparison), returned with their
features so deploy_gate can compare the generator with the champion without drawing them again."""

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Tuple

import mlflow
import numpy as np
import torch
from torchvision.utils import make_grid
from zenml import log_metadata, step

from facegen.devices import resolve_device
from facegen.metrics.evaluation import evaluate_generator
from facegen.metrics.features import (
    INCEPTION_POOL3,
    REAL_FEATURES_FILE,
    REAL_IMAGES_FILE,
    RealFeatures,
    file_sha256,
)
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.metrics.memorisation import closest_pairs_grid, closest_samples
from facegen.metrics.samples import balance_targets
from facegen.models.bundle import load_generator_bundle
from facegen.provenance.c2pa_manifest import GridProvenance, shown_seeds
from facegen.provenance.credentials import ProvenanceConfig
from facegen.provenance.marking import FaceMarker, log_marked_grid
from facegen.registry.model_registry import EVAL_PROTOCOL_ID_TAG
from facegen.registry.names import GENERATOR_MODEL_NAME

#: Faces in samples/evaluation_grid.png (8 × 8) and closest pairs in memorisation/closest_pairs.png.
GRID_FACES = 64
CLOSEST_PAIRS = 16


@step
def evaluate(
    generator_bundle: Path,
    real_features: Path,
    balance_shares: dict,
    num_generated: int = 500,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    prc_neighborhood: int = 3,
    is_splits: int = 10,
    near_copy_quantile: float = 0.01,
    latency_repeats: int = 50,
    seed: int = 0,
) -> Tuple[Annotated[dict, "metrics"], Annotated[np.ndarray, "generated_features"], Annotated[dict, "eval_protocol"]]:
    """Metrics at the training resolution against the cached real features; every value is logged to MLflow.

    ``near_copy_quantile``: a generated face closer to its nearest training face than this quantile of the
    training faces' own nearest-neighbour distances counts as a near copy. Also returns the generated faces'
    Inception features and the protocol they were measured under (as a dict of EvaluationProtocol's fields).
    The sample grid and the closest pairs are signed PNGs; without signing credentials the step fails before any work.
    """
    marker = FaceMarker(ProvenanceConfig())
    marker.check()
    device = resolve_device()
    generator = load_generator_bundle(generator_bundle, device=device)
    weights = ensure_inception_weights()
    real = RealFeatures.load(
        real_features / REAL_FEATURES_FILE,
        resolution=generator.resolution,
        extractor=INCEPTION_POOL3,
        weights_sha256=file_sha256(weights),
    )
    evaluation = evaluate_generator(
        generator,
        real,
        weights_path=weights,
        targets=balance_targets(balance_shares),
        num_generated=num_generated,
        seed=seed + 1_000_003,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        prc_neighborhood=prc_neighborhood,
        is_splits=is_splits,
        near_copy_quantile=near_copy_quantile,
        latency_repeats=latency_repeats,
        device=device,
        progress=True,
    )
    generated, protocol_id = evaluation.sample.faces, evaluation.protocol.id
    mlflow.log_metrics(evaluation.values)
    fit = evaluation.results["fid_inf"].arrays  # the points FID∞ was read from: a person can check the line
    mlflow.log_dict(
        {"sizes": fit["fid_inf_sizes"].tolist(), "fids": fit["fid_inf_fids"].tolist()}, "evaluation/fid_inf_fit.json"
    )
    mlflow.set_tags({**evaluation.tags, EVAL_PROTOCOL_ID_TAG: protocol_id})
    mlflow.log_params(
        {
            "eval_num_generated": len(generated),
            "eval_num_real": real.count,
            "eval_real_dataset_hash": real.dataset_hash[:16],
            "eval_resolution": real.resolution,
        }
    )
    run_id, seeds = mlflow.active_run().info.run_id, evaluation.sample.seeds
    grid = make_grid(torch.from_numpy(generated[:GRID_FACES]), nrow=8, padding=1).permute(1, 2, 0).numpy()
    made_by = GridProvenance(GENERATOR_MODEL_NAME, run_id, shown_seeds(seeds[:GRID_FACES]))
    log_marked_grid(grid, "samples/evaluation_grid.png", made_by, marker)
    real_images = np.load(real_features / REAL_IMAGES_FILE)
    memorisation = evaluation.results["memorisation"].arrays
    pairs = closest_pairs_grid(generated, real_images, memorisation, k=CLOSEST_PAIRS)
    shown = [seeds[i] for i in closest_samples(memorisation, CLOSEST_PAIRS)]
    made_by = GridProvenance(GENERATOR_MODEL_NAME, run_id, shown_seeds(shown), with_real=True)
    log_marked_grid(pairs, "memorisation/closest_pairs.png", made_by, marker)
    counts = {"num_generated": float(len(generated)), "num_real": float(real.count)}
    result = {**evaluation.values, **counts, **evaluation.tags}
    log_metadata(metadata={**result, EVAL_PROTOCOL_ID_TAG: protocol_id})
    return result, evaluation.features, asdict(evaluation.protocol)
