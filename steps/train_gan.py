"""train_gan: adversarial training on the shard set (decoded whole when it fits, else streamed: facegen.train.data_feed);
EMA generator bundle and full checkpoint out.

``launcher`` says how (facegen.train.launcher): in this process, or DDP with torchrun on every GPU of the pod. Rank 0
logs to this step's MLflow run either way (params, losses, signed sample grids, curves; with ``fid_every_steps`` the
EMA generator's FID against the cached real features, ``curves/fid.png``). The checkpoint is copied to the artifact
store while training, under a key that every retry of this pipeline run shares: a retried step resumes from it.
``resume_from`` has a new run continue another's last checkpoint (docs/operations.md "Launcher, retries, resume").
"""

import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

import mlflow
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.io import fileio

from facegen.data.label_encoding import labels_for_model, require_labels
from facegen.data.shards import ShardSet
from facegen.metrics.features import REAL_FEATURES_FILE
from facegen.metrics.samples import balance_targets
from facegen.models.conditioning import label_dims_for
from facegen.train.checkpoint import CheckpointMirror, checkpoint_key, fetch_resume_checkpoint
from facegen.train.config import TrainingConfig
from facegen.train.ddp_main import Reporting
from facegen.train.job_outputs import GENERATOR_DIR, checkpoint_path
from facegen.train.launcher import LauncherConfig, train


@step
def train_gan(
    training_set: ShardSet,
    real_features: Path,
    balance_shares: dict,
    training: Optional[dict[str, Any]] = None,
    launcher: Optional[dict[str, Any]] = None,
    seed: int = 0,
    resume_from: Optional[str] = None,
) -> Tuple[Annotated[Path, "generator_bundle"], Annotated[Path, "training_checkpoint"]]:
    """``training`` holds every TrainingConfig knob from the YAML; the pipeline's seed wins over any seed inside.

    A conditional model (``training.model.conditioning``) trains on the set's labels (−1 trains "unspecified");
    data without them fails here, before the first step, naming the missing labels and the fix; so do missing signing
    credentials (each epoch's sample grid is a signed PNG).

    ``resume_from``: a previous pipeline run's name or id (its train_gan checkpoint in this artifact store), or a
    checkpoint URI (any value with a ``/``, e.g. a PyTorchJob's ``PREFIX/checkpoint/last.pt``); used when this run has
    no checkpoint of its own. Missing, or of another model: an error before training.
    """
    config = TrainingConfig.from_dict({**(training or {}), "seed": seed})
    how = LauncherConfig.from_dict(launcher)
    label_dims = label_dims_for(config.model.get("conditioning"))
    if label_dims:
        require_labels(training_set.labels, label_dims)
    run = get_step_context()
    store_key = checkpoint_key(Client().active_stack.artifact_store.path, str(run.pipeline_run.id), run.step_run.name)
    out = Path(tempfile.mkdtemp(prefix="facegen-train-")) / "out"
    local = checkpoint_path(out)
    resumed = fetch_resume_checkpoint(
        local,
        store_key,
        _checkpoint_of(resume_from, run.step_run.name),
        _fetch,
        config.architecture,
        {**config.model, "resolution": training_set.resolution},  # the trainer's model_config
    )
    reporting = Reporting(
        mlflow_run_id=mlflow.active_run().info.run_id,
        real_features=str(real_features / REAL_FEATURES_FILE),
        fid_targets=balance_targets(balance_shares),
        fid_seed=seed + 5_000_011,
    )
    with CheckpointMirror(local, lambda path: _store(path, store_key)):
        summary = train(
            how,
            training_set,
            config,
            out,
            reporting=reporting,
            labels=labels_for_model(training_set.labels, label_dims) if label_dims else None,
            sample_weights=training_set.sample_weights,
        )
    # How it trained, next to rank 0's train.* params: a 2-worker run reads as one in MLflow, not only in ZenML.
    processes = {"world_size": summary["world_size"], "threads_per_worker": summary["threads_per_worker"]}
    mlflow.log_params({"launcher.type": how.type, **{f"train.{key}": value for key, value in processes.items()}})
    log_metadata(
        metadata={
            **processes,
            "generator_steps": summary["generator_steps"],
            "images_seen": summary["images_seen"],
            "seconds": round(summary["seconds"], 1),
            "resumed_from_step": summary["resumed_from_step"],
            "checkpoint_uri": store_key,
            **({"resumed_from": resumed} if resumed else {}),
        }
    )
    return out / GENERATOR_DIR, local.parent


def _checkpoint_of(resume_from: Optional[str], step_name: str) -> Optional[str]:
    """``resume_from`` as a checkpoint URI: a run's name or id becomes its checkpoint key in this artifact store."""
    if resume_from is None or "/" in resume_from:
        return resume_from
    try:
        previous = Client().get_pipeline_run(resume_from)
    except KeyError as error:
        raise ValueError(
            f"resume_from {resume_from!r}: no pipeline run with that name or id (zenml pipeline runs list), and not "
            "a checkpoint URI"
        ) from error
    return checkpoint_key(Client().active_stack.artifact_store.path, str(previous.id), step_name)


def _fetch(key: str, path: Path) -> bool:
    """Copy a checkpoint from the artifact store to ``path``; False when there is none."""
    if not fileio.exists(key):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.copy(key, str(path))
    return True


def _store(path: Path, key: str) -> None:
    """Copy the local checkpoint to the artifact store: to a temp name, then renamed over the key, so a kill
    mid-copy leaves the previous checkpoint (S3 puts are whole objects anyway)."""
    fileio.makedirs(key.rsplit("/", 1)[0])
    partial = f"{key}.part"
    fileio.copy(str(path), partial, overwrite=True)
    fileio.rename(partial, key, overwrite=True)
