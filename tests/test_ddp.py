"""Multi-process training with torch.distributed DDP, launched by torchrun exactly as on a GPU node (gloo on CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from facegen.models.bundle import load_generator_bundle
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
