"""The `training_from_job` pipeline: the data stages of `training` (ingest … real_features), then
pickup_training_job, a finished Kubeflow PyTorchJob's generator from its ``--remote`` S3 prefix, in place of
train_gan, then the same evaluation and gate (pipelines/stages.py). Only wiring lives here.

Run: ``zenml pipeline run pipelines.training_from_job.training_from_job -c configs/k8s_from_job.yaml`` with
``FACEGEN_DDP_REMOTE`` set to the job's prefix (docs/operations.md "Multi-GPU training").
"""

from typing import Optional

from zenml import pipeline

from facegen.paths import DEFAULT_SOURCE
from pipelines.stages import evaluate_and_gate, prepare_data
from steps.pickup_training_job import pickup_training_job


@pipeline(name="training_from_job")
def training_from_job(
    job_remote: str,
    source: str = DEFAULT_SOURCE,
    resolution: int = 32,
    seed: int = 0,
    fairness_gates: Optional[dict] = None,
) -> None:
    """Evaluate, gate and register the generator a training job wrote to ``job_remote`` (s3://bucket/prefix), on
    the data of ``source`` at ``resolution``: the source and settings the job's dataset was built from, so the data
    steps hit ZenML's cache and the generator is scored against the faces it learned."""
    data = prepare_data(source, resolution, seed)
    bundle = pickup_training_job(job_remote=job_remote, resolution=resolution)
    evaluate_and_gate(bundle, data, seed, fairness_gates)
