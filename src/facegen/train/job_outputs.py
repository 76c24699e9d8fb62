"""Where a training job's outputs lie, on its node and in S3, and how a pipeline picks a finished job's up.

Rank 0 of ``facegen.train.ddp_main`` writes OUT/generator (the bundle), OUT/checkpoint/last.pt and OUT/summary.json.
With ``--remote s3://bucket/prefix`` (the Kubeflow PyTorchJob) the checkpoint is copied to PREFIX/checkpoint/last.pt
while training, and at the end the bundle to PREFIX/generator/ and the summary to PREFIX/summary.json, the summary
last: a prefix without it is a job that has not finished. ``fetch_job_outputs`` is the way back into the pipeline
(steps/pickup_training_job.py, pipelines/training_from_job.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegen.models.bundle import SPEC_FILE, WEIGHTS_FILE, load_generator_bundle, read_bundle_spec
from facegen.train.checkpoint import CHECKPOINT_FILE, s3_download, s3_upload

GENERATOR_DIR = "generator"
SUMMARY_FILE = "summary.json"
#: What a finished job's summary states (ddp_main.run_job writes them), checked on pickup.
SUMMARY_KEYS = ("generator_steps", "images_seen", "seconds", "world_size")


def checkpoint_path(out: Path) -> Path:
    """The resumable checkpoint of a run writing to ``out``."""
    return out / "checkpoint" / CHECKPOINT_FILE


def remote_checkpoint(prefix: str) -> str:
    """The S3 object a job with ``--remote prefix`` copies its checkpoint to (and resumes from)."""
    return f"{prefix.rstrip('/')}/checkpoint/{CHECKPOINT_FILE}"


def push_outputs(out: Path, prefix: str) -> None:
    """Upload a finished job's bundle, then its summary: the summary's presence says the rest is there."""
    prefix = prefix.rstrip("/")
    for path in sorted((out / GENERATOR_DIR).iterdir()):
        s3_upload(path, f"{prefix}/{GENERATOR_DIR}/{path.name}")
    s3_upload(out / SUMMARY_FILE, f"{prefix}/{SUMMARY_FILE}")


@dataclass(frozen=True)
class FinishedJob:
    """A finished job's outputs, fetched: the generator bundle (loaded once to prove it) and the job's summary."""

    bundle: Path
    summary: dict[str, Any]
    architecture: str
    resolution: int


def fetch_job_outputs(prefix: str, dest: Path, resolution: int) -> FinishedJob:
    """Download the bundle and summary a ``--remote prefix`` job wrote into ``dest`` and check them.

    Refused, naming what is wrong: missing objects (all of them, with the prefix), a summary without the counters,
    a bundle that does not load, or one trained at another resolution than the pipeline evaluates at.
    """
    prefix = prefix.rstrip("/")
    wanted = {
        f"{GENERATOR_DIR}/{WEIGHTS_FILE}": dest / GENERATOR_DIR / WEIGHTS_FILE,
        f"{GENERATOR_DIR}/{SPEC_FILE}": dest / GENERATOR_DIR / SPEC_FILE,
        SUMMARY_FILE: dest / SUMMARY_FILE,
    }
    missing = [name for name, path in wanted.items() if not s3_download(f"{prefix}/{name}", path)]
    if missing:
        raise FileNotFoundError(
            f"training job outputs under {prefix}/ are incomplete: missing {', '.join(missing)} ({SUMMARY_FILE} is "
            f"written last, after the bundle: without it the job has not finished; is this the job's --remote?)"
        )
    summary = json.loads((dest / SUMMARY_FILE).read_text())
    absent = [key for key in SUMMARY_KEYS if key not in summary]
    if absent:
        raise ValueError(
            f"{prefix}/{SUMMARY_FILE} lacks {', '.join(absent)}: not a summary facegen.train.ddp_main wrote"
        )
    bundle = dest / GENERATOR_DIR
    spec = read_bundle_spec(bundle)
    trained_at = int(spec["model"]["resolution"])
    if trained_at != resolution:
        raise ValueError(
            f"{prefix}/{GENERATOR_DIR} was trained at {trained_at}×{trained_at}; this pipeline evaluates at "
            f"{resolution}×{resolution}: set the pipeline's resolution to the job's dataset's"
        )
    load_generator_bundle(bundle)  # weights that do not fit the spec fail here, not in evaluate
    return FinishedJob(bundle=bundle, summary=summary, architecture=spec["architecture"], resolution=trained_at)
