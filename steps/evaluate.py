"""evaluate: FID and KID (torch-fidelity, offline Inception weights) of generated faces vs the training faces."""

from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
import torch
from torchvision.utils import make_grid
from zenml import log_metadata, step

from facegen.metrics.fidelity import compute_fidelity
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.models.bundle import load_generator_bundle
from facegen.models.sampling import generate_images


@step
def evaluate(
    generator_bundle: Path,
    packed_dataset: np.ndarray,
    num_generated: int = 500,
    max_real: int = 2000,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> Annotated[dict, "metrics"]:
    """Metrics at the training resolution. IS is not reported here: the offline FID network has no classifier."""
    generator = load_generator_bundle(generator_bundle)
    generated = generate_images(generator, num_generated, seed=seed + 1_000_003)
    real = _subset(packed_dataset, max_real, seed)
    metrics = compute_fidelity(
        generated, real, weights_path=ensure_inception_weights(), kid_subset_size=kid_subset_size
    )
    mlflow.log_metrics(metrics)
    mlflow.log_params({"eval_num_generated": len(generated), "eval_num_real": len(real)})
    grid = make_grid(torch.from_numpy(generated[:64]), nrow=8, padding=1).permute(1, 2, 0).numpy()
    mlflow.log_image(grid, artifact_file="samples/evaluation_grid.png")
    log_metadata(metadata={**metrics, "num_generated": len(generated), "num_real": len(real)})
    return {**metrics, "num_generated": float(len(generated)), "num_real": float(len(real))}


def _subset(images: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """A seeded random subset of at most ``limit`` training images (all of them when fewer)."""
    if len(images) <= limit:
        return images
    return images[np.random.default_rng(seed).choice(len(images), size=limit, replace=False)]
