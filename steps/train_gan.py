"""train_gan: adversarial training on the packed dataset; EMA generator bundle and full checkpoint out.

With ``fid_every_steps`` set, the EMA generator's FID against the cached real features is logged during training
(``train_fid``) and drawn against training minutes (``curves/fid.png``).
"""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

import mlflow
import numpy as np
from zenml import log_metadata, step

from facegen.data.label_encoding import labels_for_model, require_labels
from facegen.metrics.features import REAL_FEATURES_FILE, RealFeatures
from facegen.metrics.inception_weights import ensure_inception_weights
from facegen.metrics.samples import balance_targets
from facegen.models.bundle import save_generator_bundle
from facegen.models.conditioning import label_dims_for
from facegen.provenance.credentials import ProvenanceConfig
from facegen.provenance.marking import FaceMarker
from facegen.train.config import TrainingConfig
from facegen.train.fid_tracker import TrainingFID, plot_fid_curve
from facegen.train.loop import train_gan as run_training
from facegen.train.mlflow_monitor import MlflowTrainingMonitor, plot_loss_curves


@step
def train_gan(
    packed_dataset: np.ndarray,
    labels: np.ndarray,
    sample_weights: np.ndarray,
    real_features: Path,
    balance_shares: dict,
    training: Optional[dict[str, Any]] = None,
    seed: int = 0,
) -> Tuple[Annotated[Path, "generator_bundle"], Annotated[Path, "training_checkpoint"]]:
    """``training`` holds every TrainingConfig knob from the YAML; the pipeline's seed wins over any seed inside.

    A conditional model (``training.model.conditioning``) trains on the dataset's labels (−1 trains "unspecified");
    data without them fails here, before the first step, naming the missing labels and the fix; so do missing signing
    credentials (each epoch's sample grid is a signed PNG).
    """
    config = TrainingConfig.from_dict({**(training or {}), "seed": seed})
    label_dims = label_dims_for(config.model.get("conditioning"))
    if label_dims:
        require_labels(labels, label_dims)
    marker = FaceMarker(ProvenanceConfig())
    marker.check()
    mlflow.log_params(
        {
            "architecture": config.architecture,
            "resolution": packed_dataset.shape[-1],
            "train_images": len(packed_dataset),
            **_flat("train", config.to_dict()),
        }
    )
    work = Path(tempfile.mkdtemp(prefix="facegen-train-"))
    checkpoint = work / "checkpoint" / "last.pt"
    fid_tracker = None
    if config.fid_every_steps:
        fid_tracker = TrainingFID(
            RealFeatures.load(real_features / REAL_FEATURES_FILE),
            ensure_inception_weights(),
            num_samples=config.fid_num_samples,
            seed=seed + 5_000_011,
            targets=balance_targets(balance_shares),
        )
    result = run_training(
        packed_dataset,
        config,
        labels=labels_for_model(labels, label_dims) if label_dims else None,
        sample_weights=sample_weights,
        monitor=MlflowTrainingMonitor(marker, training_seed=config.seed),
        checkpoint_path=checkpoint,
        fid_fn=fid_tracker,
    )
    mlflow.log_figure(plot_loss_curves(result.history), "curves/losses.png")
    if fid_tracker is not None and fid_tracker.points:
        mlflow.log_figure(plot_fid_curve(fid_tracker.points), "curves/fid.png")
        mlflow.log_dict({"points": fid_tracker.points}, "curves/fid.json")
    mlflow.log_metrics({"train_seconds": result.seconds, "train_images_seen": float(result.images_seen)})
    bundle = save_generator_bundle(work / "generator", config.architecture, result.model_config, result.generator)
    log_metadata(
        metadata={
            "generator_steps": result.generator_steps,
            "images_seen": result.images_seen,
            "seconds": round(result.seconds, 1),
        }
    )
    return bundle, checkpoint.parent


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Nested config → flat MLflow params (``train.augment.flip_p``)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}"
        flat.update(_flat(name, value) if isinstance(value, dict) else {name: value})
    return flat
