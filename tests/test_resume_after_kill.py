"""Resume after a real kill: `facegen.train.ddp_main` is SIGKILLed mid-run, then restarted with --resume, or its
checkpoint is continued by a new run (the train_gan step's ``resume_from``: fetched from S3 into an empty output
folder); either ends with exactly the generator an uninterrupted run produces, its counters continued from the
checkpoint instead of restarting (what stylegan2-ada-pytorch users complain about)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from facegen.models.bundle import load_generator_bundle
from facegen.train.checkpoint import checkpoint_key, fetch_resume_checkpoint, load_checkpoint, s3_download, s3_upload
from facegen.train.job_outputs import checkpoint_path
from tests.conftest import REPO_ROOT
from tests.tiny_training import RESUMABLE_TRAINING

KILL_AFTER_STEP = 6  # the run is killed once a checkpoint at least this far along is on disk
TOTAL_STEPS = 40 * (64 // 16)


def _command(dataset: Path, config: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "facegen.train.ddp_main",
        "--dataset",
        str(dataset),
        "--config",
        str(config),
        "--out",
        str(out),
        *extra,
    ]


@dataclass(frozen=True)
class KilledRun:
    """An uninterrupted run and a run SIGKILLed mid-training on the same inputs, and where the kill left it."""

    dataset: Path
    config: Path
    straight: Path
    killed: Path  # trained on to the end by the --resume test
    at_kill: Path  # a copy of the checkpoint the kill left


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def killed_run(real_faces_32: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> KilledRun:
    tmp_path = tmp_path_factory.mktemp("resume")
    dataset = tmp_path / "packed.npy"
    np.save(dataset, np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2]))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(RESUMABLE_TRAINING))
    straight = tmp_path / "straight"
    subprocess.run(
        _command(dataset, config, straight), cwd=REPO_ROOT, env=ENV, check=True, capture_output=True, timeout=300
    )

    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint" / "last.pt"
    process = subprocess.Popen(
        _command(dataset, config, killed), cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline, step_at_kill = time.monotonic() + 240, 0
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists():  # written atomically (temp file + rename): never half a file
            step_at_kill = load_checkpoint(checkpoint, torch.device("cpu"))["generator_steps"]
            if step_at_kill >= KILL_AFTER_STEP:
                process.send_signal(signal.SIGKILL)
                break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "summary.json").exists() and KILL_AFTER_STEP <= step_at_kill < TOTAL_STEPS
    at_kill = tmp_path / "at-kill.pt"
    shutil.copy(checkpoint, at_kill)
    return KilledRun(dataset, config, straight, killed, at_kill)


def _step_of(checkpoint: Path) -> int:
    return load_checkpoint(checkpoint, torch.device("cpu"))["generator_steps"]


def _resume_and_compare(run: KilledRun, out: Path, from_step: int) -> None:
    """Train ``out`` on with --resume: it ends where the uninterrupted run ended, bit for bit, counters continued."""
    subprocess.run(
        _command(run.dataset, run.config, out, "--resume"),
        cwd=REPO_ROOT,
        env=ENV,
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == from_step < TOTAL_STEPS  # from the last checkpoint, not from zero
    assert summary["generator_steps"] == TOTAL_STEPS and summary["images_seen"] == 40 * 64
    expected = load_generator_bundle(run.straight / "generator").state_dict()
    for name, tensor in load_generator_bundle(out / "generator").state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_a_killed_run_resumes_to_the_same_generator(killed_run: KilledRun) -> None:
    _resume_and_compare(killed_run, killed_run.killed, _step_of(killed_run.at_kill))


def test_a_new_run_resumes_from_a_killed_runs_checkpoint_in_s3(
    killed_run: KilledRun, s3_env: Any, tmp_path: Path
) -> None:
    s3_env.create_bucket(Bucket="facegen-artifacts")
    store = "s3://facegen-artifacts/zenml"
    killed_key = checkpoint_key(store, "killed-run", "train_gan")
    s3_upload(killed_run.at_kill, killed_key)  # the killed run's checkpoint, as its mirror left it in the store
    new_run = tmp_path / "new-run"
    model = {**RESUMABLE_TRAINING["model"], "resolution": 16}
    own_key = checkpoint_key(store, "new-run", "train_gan")

    source = fetch_resume_checkpoint(checkpoint_path(new_run), own_key, killed_key, s3_download, "dcgan", model)

    assert source == killed_key  # the new run has no checkpoint of its own yet
    _resume_and_compare(killed_run, new_run, _step_of(killed_run.at_kill))
    s3_upload(checkpoint_path(new_run), own_key)  # the new run's own checkpoint, as its mirror copies it
    retried = tmp_path / "new-run-retried"
    assert (
        fetch_resume_checkpoint(checkpoint_path(retried), own_key, killed_key, s3_download, "dcgan", model) == own_key
    )


def test_a_missing_or_foreign_resume_from_checkpoint_is_refused_before_training(
    killed_run: KilledRun, s3_env: Any, tmp_path: Path
) -> None:
    s3_env.create_bucket(Bucket="facegen-resume")
    local = checkpoint_path(tmp_path / "out")
    model = {**RESUMABLE_TRAINING["model"], "resolution": 16}
    own_key = checkpoint_key("s3://facegen-resume", "new-run", "train_gan")
    missing = "s3://facegen-resume/checkpoints/never-trained/train_gan/last.pt"
    with pytest.raises(FileNotFoundError, match="resume_from: no checkpoint at 's3://facegen-resume/checkpoints/never"):
        fetch_resume_checkpoint(local, own_key, missing, s3_download, "dcgan", model)
    assert fetch_resume_checkpoint(local, own_key, None, s3_download, "dcgan", model) is None  # a fresh start
    other = "s3://facegen-resume/checkpoints/killed-run/train_gan/last.pt"
    s3_upload(killed_run.at_kill, other)
    with pytest.raises(ValueError, match=r"cannot be continued: .* holds architecture 'dcgan' with model .*'width': 8"):
        fetch_resume_checkpoint(local, own_key, other, s3_download, "dcgan", {**model, "width": 16})
    assert not local.exists()  # nothing left for the trainer to resume from
