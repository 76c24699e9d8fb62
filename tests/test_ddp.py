"""Multi-process training with torch.distributed DDP, launched by torchrun exactly as on a GPU node (gloo on CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facegen.models.bundle import load_generator_bundle
from facegen.train.config import TrainingConfig
from facegen.train.ddp_main import Reporting
from facegen.train.job_outputs import GENERATOR_DIR, SUMMARY_FILE
from facegen.train.launcher import LauncherConfig, train
from tests.conftest import REPO_ROOT
from tests.local_servers import PORT_TRIES


def test_two_ddp_processes_keep_identical_replicas(real_faces_32: np.ndarray, tmp_path: Path):
    dataset = tmp_path / "packed.npy"
    np.save(dataset, np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2]))
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"latent_dim": 16, "width": 8},
                "epochs": 2,
                "batch_size": 16,
                "grid_size": 4,
                "log_every_steps": 1,
                "device": "cpu",
            }
        )
    )
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    for _ in range(PORT_TRIES):  # a free port, released for torchrun to bind, may be taken meanwhile: try another
        with socket.socket() as probe:  # torchrun's --master_port=0 hangs with the static rendezvous: pick a free port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            "-m",
            "facegen.train.ddp_main",
            "--dataset",
            str(dataset),
            "--config",
            str(config),
            "--out",
            str(out),
        ]
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode == 0 or "address already in use" not in (result.stdout + result.stderr).lower():
            break
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["generator_steps"] == 2 * (64 // 16)  # the global batch of 16 is split 8 + 8
    assert summary["images_seen"] == 2 * 64
    digests = summary["replica_digests"]
    assert len(digests) == 4  # G on both ranks, then D on both ranks
    assert digests[0] == digests[1] and digests[2] == digests[3]
    assert load_generator_bundle(out / "generator").resolution == 16

    # The same launch with --resume picks the finished checkpoint up and has nothing left to do.
    again = subprocess.run(command + ["--resume"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == summary["generator_steps"]


def test_a_two_process_run_resumed_from_its_checkpoint_continues_every_rank_exactly(
    real_faces_32: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The train_gan step's torchrun launcher (2 gloo workers): one epoch, stop, resume to two == two straight. Each
    rank's random streams are in the checkpoint (rank 1 draws other latents than rank 0), so this holds only when
    every rank continues its own. Without OMP_NUM_THREADS set, the launcher splits the cores between the workers (as
    torchrun's CLI caps them), and leaves the step's own environment as it was."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    faces = np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2])
    torchrun = LauncherConfig(type="torchrun", nproc_per_node=2)
    tiny = {"model": {"latent_dim": 16, "width": 8}, "batch_size": 16, "grid_size": 4, "device": "cpu"}

    straight = train(torchrun, faces, TrainingConfig.from_dict({**tiny, "epochs": 2}), tmp_path / "straight" / "out")
    assert straight["world_size"] == 2 and straight["generator_steps"] == 2 * (64 // 16)
    assert straight["threads_per_worker"] == max(1, (os.cpu_count() or 1) // 2)
    assert "OMP_NUM_THREADS" not in os.environ

    out = tmp_path / "stopped" / "out"
    first = train(torchrun, faces, TrainingConfig.from_dict({**tiny, "epochs": 1}), out)
    resumed = train(torchrun, faces, TrainingConfig.from_dict({**tiny, "epochs": 2}), out)
    assert resumed["resumed_from_step"] == first["generator_steps"] == 64 // 16
    assert resumed["generator_steps"] == straight["generator_steps"]
    assert resumed["images_seen"] == straight["images_seen"] == 2 * 64
    assert json.loads((out / SUMMARY_FILE).read_text()) == resumed
    expected = load_generator_bundle(tmp_path / "straight" / "out" / GENERATOR_DIR).state_dict()
    for name, tensor in load_generator_bundle(out / GENERATOR_DIR).state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_rank_0_of_a_torchrun_job_reports_to_the_steps_mlflow_run(
    real_faces_32: np.ndarray, tmp_path: Path, facegen_home: Path, mlflow_tracking, monkeypatch: pytest.MonkeyPatch
):
    """What the one-process step logs, a 2-worker job logs too, once (rank 0), into the run it is given: params,
    per-step losses, a signed grid per epoch, the loss curves."""
    monkeypatch.setenv("FACEGEN_HOME", str(facegen_home))  # the workers sign the grids with its credentials
    experiment = mlflow_tracking.create_experiment(f"ddp-report-{tmp_path.name}")
    run_id = mlflow_tracking.create_run(experiment).info.run_id
    config = TrainingConfig.from_dict(
        {"model": {"latent_dim": 16, "width": 8}, "batch_size": 16, "grid_size": 4, "epochs": 2, "log_every_steps": 2}
        | {"device": "cpu"}
    )
    torchrun = LauncherConfig(type="torchrun", nproc_per_node=2)
    faces = np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2])
    summary = train(torchrun, faces, config, tmp_path / "out", reporting=Reporting(mlflow_run_id=run_id))

    run = mlflow_tracking.get_run(run_id)
    assert run.data.params["train.epochs"] == "2" and run.data.params["train_images"] == "64"
    losses = mlflow_tracking.get_metric_history(run_id, "train_loss_d")
    assert sorted(m.step for m in losses) == [1, 2, 4, 6, 8]  # once per logged step: rank 1 does not log
    assert summary["generator_steps"] == 8 and summary["world_size"] == 2
    artifacts = {a.path for folder in ("samples", "curves") for a in mlflow_tracking.list_artifacts(run_id, folder)}
    assert {"samples/epoch_001.png", "samples/epoch_002.png", "curves/losses.png"} <= artifacts
