"""evaluate: fidelity (FID, KID, precision/recall; torch-fidelity, offline Inception), Inception Score,
memorisation and generation latency of the trained generator, from one feature pass over its generated faces.

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
from facegen.metrics.comparison import EvaluationProtocol, protocol_features
from facegen.metrics.features import (
    INCEPTION_POOL3,
    REAL_FEATURES_FILE,
    REAL_IMAGES_FILE,
    RealFeatures,
    file_sha256,
)
from facegen.metrics.fidelity import fidelity_from_features
from facegen.metrics.inception_score import inception_score
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.metrics.latency import generation_latency
from facegen.metrics.memorisation import closest_pairs_grid, memorisation_report
from facegen.metrics.samples import balance_targets
from facegen.models.bundle import load_generator_bundle
from facegen.models.conditioning import UNKNOWN
from facegen.registry.model_registry import EVAL_PROTOCOL_ID_TAG


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
) -> Tuple[
    Annotated[dict, "metrics"], Annotated[np.ndarray, "generated_features"], Annotated[dict, "eval_protocol"]
]:
    """Metrics at the training resolution against the cached real features; every value is logged to MLflow.

    ``near_copy_quantile``: a generated face closer to its nearest training face than this quantile of the
    training faces' own nearest-neighbour distances counts as a near copy. Also returns the generated faces'
    Inception features and the protocol they were measured under (as a dict of EvaluationProtocol's fields).
    """
    device = resolve_device()
    generator = load_generator_bundle(generator_bundle, device=device)
    weights = ensure_inception_weights()
    real = RealFeatures.load(real_features / REAL_FEATURES_FILE, resolution=generator.resolution,
                             extractor=INCEPTION_POOL3, weights_sha256=file_sha256(weights))  # fmt: skip
    protocol = EvaluationProtocol.for_generator(generator, real, num_generated=num_generated, seed=seed + 1_000_003,
                                                targets=balance_targets(balance_shares),
                                                kid_subset_size=kid_subset_size, kid_subsets=kid_subsets)  # fmt: skip
    sample, features = protocol_features(generator, protocol, weights_path=weights, device=device, progress=True)
    generated = sample.faces
    fidelity = fidelity_from_features(features, real.features, kid_subset_size=kid_subset_size,
                                      kid_subsets=kid_subsets, prc_neighborhood=prc_neighborhood,
                                      device=device)  # fmt: skip
    score = inception_score(generated, splits=is_splits, device=device)
    memorisation = memorisation_report(features, real.features, quantile=near_copy_quantile, device=device)
    any_face = np.full(len(generator.label_dims), UNKNOWN) if generator.label_dims else None  # "any gender, age…"
    latency = generation_latency(generator, repeats=latency_repeats, device=device, labels=any_face)

    numbers = {**fidelity, "is_mean": score["is_mean"], "is_std": score["is_std"],
               "near_copy_share": memorisation["near_copy_share"],
               "nn_distance_p50": memorisation["nn_distance_p50"], "near_copy_threshold": memorisation["threshold"],
               "latency_p50_ms": latency["latency_p50_ms"], "latency_p95_ms": latency["latency_p95_ms"]}  # fmt: skip
    mlflow.log_metrics(numbers)
    mlflow.set_tags({"is_network": score["is_network"], "latency_device": latency["latency_device"],
                     EVAL_PROTOCOL_ID_TAG: protocol.id})  # fmt: skip
    mlflow.log_params({"eval_num_generated": len(generated), "eval_num_real": real.count,
                       "eval_real_dataset_hash": real.dataset_hash[:16], "eval_resolution": real.resolution})
    grid = make_grid(torch.from_numpy(generated[:64]), nrow=8, padding=1).permute(1, 2, 0).numpy()
    mlflow.log_image(grid, artifact_file="samples/evaluation_grid.png")
    real_images = np.load(real_features / REAL_IMAGES_FILE)
    mlflow.log_image(closest_pairs_grid(generated, real_images, memorisation, k=16),
                     artifact_file="memorisation/closest_pairs.png")
    result = {**numbers, "num_generated": float(len(generated)), "num_real": float(real.count),
              "is_network": score["is_network"], "latency_device": latency["latency_device"]}  # fmt: skip
    log_metadata(metadata={**result, EVAL_PROTOCOL_ID_TAG: protocol.id})
    return result, features, asdict(protocol)
