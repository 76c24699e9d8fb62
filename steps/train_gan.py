"""train_gan: adversarial training on the packed dataset; EMA generator bundle and full checkpoint out."""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

import mlflow
import numpy as np
from zenml import log_metadata, step

from facegen.models.bundle import save_generator_bundle
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan as run_training
from facegen.train.mlflow_monitor import MlflowTrainingMonitor, plot_loss_curves


@step
def train_gan(
    packed_dataset: np.ndarray,
    sample_weights: np.ndarray,
    training: Optional[dict[str, Any]] = None,
    seed: int = 0,
) -> Tuple[Annotated[Path, "generator_bundle"], Annotated[Path, "training_checkpoint"]]:
    """``training`` holds every TrainingConfig knob from the YAML; the pipeline's seed wins over any seed inside."""
    config = TrainingConfig.from_dict({**(training or {}), "seed": seed})
    mlflow.log_params({"architecture": config.architecture, "resolution": packed_dataset.shape[-1],
                       "train_images": len(packed_dataset), **_flat("train", config.to_dict())})
    work = Path(tempfile.mkdtemp(prefix="facegen-train-"))
    checkpoint = work / "checkpoint" / "last.pt"
    result = run_training(packed_dataset, config, sample_weights=sample_weights, monitor=MlflowTrainingMonitor(),
                          checkpoint_path=checkpoint)
    mlflow.log_figure(plot_loss_curves(result.history), "curves/losses.png")
    mlflow.log_metrics({"train_seconds": result.seconds, "train_images_seen": float(result.images_seen)})
    bundle = save_generator_bundle(work / "generator", config.architecture, result.model_config, result.generator)
    log_metadata(metadata={"generator_steps": result.generator_steps, "images_seen": result.images_seen,
                           "seconds": round(result.seconds, 1)})
    return bundle, checkpoint.parent


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Nested config → flat MLflow params (``train.augment.flip_p``)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}"
        flat.update(_flat(name, value) if isinstance(value, dict) else {name: value})
    return flat
