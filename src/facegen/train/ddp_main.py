"""The body of every GAN training run, and its entry point for torchrun (one process per GPU; gloo on CPUs).

The train_gan step runs :func:`run_job` in its own process, or has facegen.train.launcher start this module once per
GPU through torch.distributed's elastic launcher; the Kubeflow PyTorchJob (k8s/training/pytorchjob-ddp.yaml) runs it
with torchrun directly:

    torchrun --nproc_per_node=8 -m facegen.train.ddp_main \\
        --dataset /data/packed.npy --config /config/train.yaml --out /out [--labels labels.npy] [--weights w.npy] \\
        [--report report.json] [--remote s3://bucket/prefix] [--resume]

``--config`` is the ``training:`` block of a pipeline config (TrainingConfig fields). Rank 0 writes the generator
bundle to OUT/generator, the checkpoint to OUT/checkpoint/last.pt (resumable) and OUT/summary.json. ``--report``
(a :class:`Reporting` as JSON) has rank 0 log to the pipeline's MLflow run as the one-process step does.
``--remote``: rank 0 copies each checkpoint to PREFIX/checkpoint/last.pt while training and the bundle and summary
to PREFIX/generator/ and PREFIX/summary.json at the end; with ``--resume`` every node first fetches that checkpoint
when it has none of its own (a restarted pod has an empty disk), so the job needs no shared volume. The layout lives in
facegen.train.job_outputs, which also picks a finished job up into a pipeline (pipelines/training_from_job.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.distributed.elastic.multiprocessing.errors import record

from facegen.data.shards import ShardSet
from facegen.models.bundle import save_generator_bundle
from facegen.train.checkpoint import CheckpointMirror, s3_download, s3_upload
from facegen.train.config import TrainingConfig
from facegen.train.distributed import init_from_environment
from facegen.train.job_outputs import GENERATOR_DIR, SUMMARY_FILE, checkpoint_path, push_outputs, remote_checkpoint
from facegen.train.loop import TrainingResult, train_gan


@dataclass(frozen=True)
class Reporting:
    """Where rank 0 reports while training: the pipeline's MLflow run (losses, signed sample grids, curves), with
    FID at intervals (``fid_every_steps``) against the cached real features."""

    mlflow_run_id: str
    real_features: str | None = None  # a RealFeatures file; required when fid_every_steps is set
    fid_targets: dict[str, dict[str, float]] = field(default_factory=dict)  # requested shares (conditional FID)
    fid_seed: int = 0

    def __post_init__(self) -> None:
        if not self.mlflow_run_id:
            raise ValueError("Reporting needs the MLflow run id to log to")


def run_job(
    images: np.ndarray | ShardSet,
    config: TrainingConfig,
    out: Path,
    *,
    labels: np.ndarray | None = None,
    sample_weights: np.ndarray | None = None,
    reporting: Reporting | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Train (DDP when started by torchrun), continuing ``checkpoint_path(out)`` when ``resume`` finds it; rank 0
    writes the outputs. Returns the summary (rank 0's is the one written)."""
    context = init_from_environment(config.resolve_device())
    reports = reporting is not None and context.is_main
    with _mlflow_run(reporting.mlflow_run_id) if reports else contextlib.nullcontext():
        monitor = fid = None
        if reports:
            _log_params(images, config)
            monitor, fid = _reporters(reporting, config)
        result = train_gan(
            images,
            config,
            labels=labels,
            sample_weights=sample_weights,
            monitor=monitor,
            checkpoint_path=checkpoint_path(out),
            resume=resume,
            fid_fn=fid,
        )
        if reports:
            _log_curves(result, fid)
    summary = {
        "generator_steps": result.generator_steps,
        "images_seen": result.images_seen,
        "seconds": result.seconds,
        "rollbacks": result.rollbacks,
        "resumed_from_step": result.resumed_from_step,
        "replica_digests": result.replica_digests,
        "world_size": context.world_size,
        "threads_per_worker": torch.get_num_threads(),
    }
    if context.is_main:
        save_generator_bundle(out / GENERATOR_DIR, config.architecture, result.model_config, result.generator)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


@contextlib.contextmanager
def _mlflow_run(run_id: str) -> Iterator[None]:
    """The run to log to: already active in the step's own process (ZenML's tracker), resumed by id in a worker."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id):
        yield


def _log_params(images: np.ndarray | ShardSet, config: TrainingConfig) -> None:
    """What this run trains, as flat MLflow params (a retry logs the same values again, which MLflow accepts)."""
    import mlflow

    params = {"architecture": config.architecture, "resolution": images.shape[-1], "train_images": len(images)}
    mlflow.log_params(params | _flat("train", config.to_dict()))


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Nested config → flat MLflow params (``train.augment.flip_p``)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}"
        flat.update(_flat(name, value) if isinstance(value, dict) else {name: value})
    return flat


def _reporters(reporting: Reporting, config: TrainingConfig) -> tuple[Any, Any]:
    """The MLflow monitor (signed grids: no credentials, no run) and the FID tracker when FID is due."""
    from facegen.metrics.features import RealFeatures
    from facegen.metrics.inception_weights import ensure_inception_weights
    from facegen.provenance.credentials import ProvenanceConfig
    from facegen.provenance.marking import FaceMarker
    from facegen.train.fid_tracker import TrainingFID
    from facegen.train.mlflow_monitor import MlflowTrainingMonitor

    marker = FaceMarker(ProvenanceConfig())
    marker.check()
    fid = None
    if config.fid_every_steps:
        if reporting.real_features is None:
            raise ValueError("fid_every_steps is set but the job names no real features to score against")
        fid = TrainingFID(
            RealFeatures.load(Path(reporting.real_features)),
            ensure_inception_weights(),
            num_samples=config.fid_num_samples,
            seed=reporting.fid_seed,
            targets=reporting.fid_targets,
        )
    return MlflowTrainingMonitor(marker, training_seed=config.seed), fid


def _log_curves(result: TrainingResult, fid: Any) -> None:
    import mlflow

    from facegen.train.fid_tracker import plot_fid_curve
    from facegen.train.mlflow_monitor import plot_loss_curves

    mlflow.log_figure(plot_loss_curves(result.history), "curves/losses.png")
    if fid is not None and fid.points:
        mlflow.log_figure(plot_fid_curve(fid.points), "curves/fid.png")
        mlflow.log_dict({"points": fid.points}, "curves/fid.json")
    mlflow.log_metrics({"train_seconds": result.seconds, "train_images_seen": float(result.images_seen)})


def write_job(
    folder: Path,
    config: TrainingConfig,
    images: np.ndarray | ShardSet,
    *,
    labels: np.ndarray | None = None,
    sample_weights: np.ndarray | None = None,
    reporting: Reporting | None = None,
) -> list[str]:
    """Write a job's inputs into ``folder`` and return the arguments (less ``--out``) that run it here.

    A shard set is passed by URI (each worker streams or decodes it itself); its storage options (endpoint, keys)
    go into a file only this user can read, never onto the command line.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.yaml").write_text(yaml.safe_dump(config.to_dict()))
    args = ["--config", str(folder / "train.yaml")]
    if isinstance(images, ShardSet):
        options = folder / "storage_options.json"
        options.touch(mode=0o600)
        options.write_text(json.dumps(images.storage_options))
        args += ["--shards", images.uri, "--storage-options", str(options)]
    else:
        np.save(folder / "dataset.npy", images)
        args += ["--dataset", str(folder / "dataset.npy")]
    for name, array in (("labels", labels), ("weights", sample_weights)):
        if array is not None:
            np.save(folder / f"{name}.npy", array)
            args += [f"--{name}", str(folder / f"{name}.npy")]
    if reporting is not None:
        (folder / "report.json").write_text(json.dumps(asdict(reporting)))
        args += ["--report", str(folder / "report.json")]
    return args


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--dataset", type=Path, help="packed uint8 N×3×R×R .npy")
    data.add_argument("--shards", help="a shard set's URI (facegen.data.shards; a folder or s3://bucket/prefix)")
    parser.add_argument("--storage-options", type=Path, help="JSON of fsspec storage options for --shards")
    parser.add_argument("--labels", type=Path, help="int N×A .npy of attribute indices (conditional models)")
    parser.add_argument("--weights", type=Path, help="float N .npy of sampling weights (balance's plan)")
    parser.add_argument("--config", type=Path, required=True, help="YAML of TrainingConfig fields")
    parser.add_argument("--report", type=Path, help="JSON of a Reporting: log to that MLflow run")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--remote", help="s3://bucket/prefix: checkpoints, bundle and summary are copied there")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint/last.pt (or --remote's)")
    return parser.parse_args(argv)


@record  # a failing rank's traceback reaches the launcher's error report
def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    config = TrainingConfig.from_dict(yaml.safe_load(args.config.read_text()) or {})
    reporting = Reporting(**json.loads(args.report.read_text())) if args.report else None
    context = init_from_environment(config.resolve_device())
    local = checkpoint_path(args.out)
    remote = remote_checkpoint(args.remote) if args.remote else None
    if remote and args.resume and int(os.environ.get("LOCAL_RANK", "0")) == 0 and not local.exists():
        s3_download(remote, local)
    if context.enabled:
        dist.barrier()  # every rank of every node sees the fetched checkpoint before it decides to resume
    mirror = CheckpointMirror(local, lambda path: s3_upload(path, remote)) if remote and context.is_main else None
    with mirror or contextlib.nullcontext():
        run_job(
            _training_set(args),
            config,
            args.out,
            labels=np.load(args.labels) if args.labels else None,
            sample_weights=np.load(args.weights) if args.weights else None,
            reporting=reporting,
            resume=args.resume,
        )
    if remote and context.is_main:
        push_outputs(args.out, args.remote)
    if context.enabled:
        dist.destroy_process_group()


def _training_set(args: argparse.Namespace) -> np.ndarray | ShardSet:
    if args.dataset is not None:
        return np.load(args.dataset, mmap_mode="c")
    options = json.loads(args.storage_options.read_text()) if args.storage_options else None
    return ShardSet(args.shards, options)  # without options, fsspec's defaults (AWS_* variables, IRSA)


if __name__ == "__main__":
    main()
