"""Resume after a real kill: `facegen.train.ddp_main` is SIGKILLed mid-run, restarted with --resume, and ends with
exactly the generator an uninterrupted run produces; its counters continue from the checkpoint instead of
restarting (what stylegan2-ada-pytorch users complain about)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from facegen.models.bundle import load_generator_bundle
from facegen.train.checkpoint import load_checkpoint
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


def test_a_killed_run_resumes_to_the_same_generator(real_faces_32: np.ndarray, tmp_path: Path) -> None:
    dataset = tmp_path / "packed.npy"
    np.save(dataset, np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2]))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(RESUMABLE_TRAINING))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(
        _command(dataset, config, straight), cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=300
    )

    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint" / "last.pt"
    process = subprocess.Popen(
        _command(dataset, config, killed), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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

    subprocess.run(
        _command(dataset, config, killed, "--resume"),
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["resumed_from_step"] >= step_at_kill  # from the last checkpoint, not from zero
    assert summary["generator_steps"] == TOTAL_STEPS and summary["images_seen"] == 40 * 64
    expected = load_generator_bundle(straight / "generator").state_dict()
    for name, tensor in load_generator_bundle(killed / "generator").state_dict().items():
        assert torch.equal(tensor, expected[name]), name
