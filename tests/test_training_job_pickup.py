"""A training job's way back into the pipeline: `facegen.train.ddp_main --remote s3://…` (the Kubeflow PyTorchJob's
command, here in this process on the CPU, S3 by moto on 127.0.0.1) leaves checkpoint, bundle and summary under its
prefix; `fetch_job_outputs` (the pickup_training_job step) brings the generator back exactly as trained, and refuses
an unfinished job, an incomplete prefix or a generator of another resolution, naming what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from facegen.models.bundle import load_generator_bundle
from facegen.train import ddp_main
from facegen.train.job_outputs import fetch_job_outputs, remote_checkpoint
from tests.s3_server import list_keys

BUCKET = "facegen-artifacts"
TINY = {"model": {"latent_dim": 16, "width": 8}, "epochs": 2, "batch_size": 16, "grid_size": 4, "device": "cpu"}


@dataclass(frozen=True)
class FinishedJob:
    prefix: str  # the job's --remote
    out: Path  # its rank 0's local outputs


@pytest.fixture
def finished_job(s3_env: Any, real_faces_32: np.ndarray, tmp_path: Path) -> FinishedJob:
    s3_env.create_bucket(Bucket=BUCKET)
    dataset, config, out = tmp_path / "packed.npy", tmp_path / "train.yaml", tmp_path / "out"
    np.save(dataset, np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2]))  # 64 faces at 16²
    config.write_text(yaml.safe_dump(TINY))
    prefix = f"s3://{BUCKET}/ddp/facegen-ddp-x7k2p"
    args = ["--dataset", str(dataset), "--config", str(config), "--out", str(out), "--remote", prefix, "--resume"]
    ddp_main.main(args)  # one process: what each torchrun worker of the job runs
    return FinishedJob(prefix, out)


def test_a_finished_jobs_generator_comes_back_as_trained(finished_job: FinishedJob, s3_env: Any, tmp_path: Path):
    assert list_keys(s3_env, BUCKET, "ddp/facegen-ddp-x7k2p/") == [
        "ddp/facegen-ddp-x7k2p/checkpoint/last.pt",
        "ddp/facegen-ddp-x7k2p/generator/generator.json",
        "ddp/facegen-ddp-x7k2p/generator/generator.pt",
        "ddp/facegen-ddp-x7k2p/summary.json",
    ]

    job = fetch_job_outputs(finished_job.prefix + "/", tmp_path / "picked", resolution=16)

    assert (job.architecture, job.resolution) == ("dcgan", 16)
    assert job.summary["generator_steps"] == 2 * 64 // 16 and job.summary["images_seen"] == 2 * 64
    assert job.summary["world_size"] == 1
    trained = load_generator_bundle(finished_job.out / "generator").state_dict()
    picked = load_generator_bundle(job.bundle).state_dict()
    assert sorted(picked) == sorted(trained)
    for name, tensor in picked.items():
        assert torch.equal(tensor, trained[name]), name


def test_an_unfinished_or_incomplete_job_is_refused_naming_what_is_missing(
    finished_job: FinishedJob, s3_env: Any, tmp_path: Path
) -> None:
    running = f"s3://{BUCKET}/ddp/facegen-ddp-running"  # a job still training: only its checkpoint is there yet
    s3_env.copy_object(
        Bucket=BUCKET,
        Key=remote_checkpoint(running).removeprefix(f"s3://{BUCKET}/"),
        CopySource={"Bucket": BUCKET, "Key": remote_checkpoint(finished_job.prefix).removeprefix(f"s3://{BUCKET}/")},
    )
    with pytest.raises(
        FileNotFoundError,
        match=r"under s3://facegen-artifacts/ddp/facegen-ddp-running/ are incomplete: missing generator/generator.pt, "
        r"generator/generator.json, summary.json \(summary.json is written last",
    ):
        fetch_job_outputs(running, tmp_path / "running", resolution=16)

    s3_env.delete_object(Bucket=BUCKET, Key="ddp/facegen-ddp-x7k2p/generator/generator.pt")
    with pytest.raises(
        FileNotFoundError, match=r"facegen-ddp-x7k2p/ are incomplete: missing generator/generator.pt \("
    ):
        fetch_job_outputs(finished_job.prefix, tmp_path / "incomplete", resolution=16)

    with pytest.raises(FileNotFoundError, match=r"ddp/nothing-here/ are incomplete: missing generator/generator.pt, "):
        fetch_job_outputs(f"s3://{BUCKET}/ddp/nothing-here", tmp_path / "typo", resolution=16)


def test_a_generator_of_another_resolution_or_a_foreign_summary_is_refused(
    finished_job: FinishedJob, s3_env: Any, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"trained at 16×16; this pipeline evaluates at 64×64: set the pipeline's"):
        fetch_job_outputs(finished_job.prefix, tmp_path / "at-64", resolution=64)

    s3_env.put_object(Bucket=BUCKET, Key="ddp/facegen-ddp-x7k2p/summary.json", Body=b'{"generator_steps": 8}')
    with pytest.raises(ValueError, match=r"summary.json lacks images_seen, seconds, world_size: not a summary"):
        fetch_job_outputs(finished_job.prefix, tmp_path / "foreign", resolution=16)
