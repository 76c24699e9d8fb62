"""pickup_training_job: a finished training job's generator (the Kubeflow PyTorchJob, ``ddp_main --remote``) into
the pipeline, as the same ``generator_bundle`` artifact train_gan produces, so evaluation, gates and registration
follow unchanged (pipelines/training_from_job.py; docs/operations.md "Multi-GPU training").
"""

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import log_metadata, step

from facegen.train.job_outputs import fetch_job_outputs


@step(enable_cache=False)  # the same prefix may hold another job's outputs later (a re-used --remote)
def pickup_training_job(job_remote: str, resolution: int) -> Annotated[Path, "generator_bundle"]:
    """``job_remote`` is the job's ``--remote s3://bucket/prefix``; an unfinished or incomplete job, or one trained at
    another resolution, fails here naming what is missing or wrong. The job's counters go to the step's metadata and
    to the pipeline's MLflow run, where train_gan's would be (the model card reads them)."""
    job = fetch_job_outputs(job_remote, Path(tempfile.mkdtemp(prefix="facegen-job-")), resolution)
    summary = job.summary
    log_metadata(
        metadata={
            "job_remote": job_remote,
            "generator_steps": summary["generator_steps"],
            "images_seen": summary["images_seen"],
            "seconds": round(summary["seconds"], 1),
            "world_size": summary["world_size"],
        }
    )
    mlflow.log_params({"architecture": job.architecture, "resolution": job.resolution, "training_job": job_remote})
    mlflow.log_metrics({"train_seconds": summary["seconds"], "train_images_seen": float(summary["images_seen"])})
    return job.bundle
