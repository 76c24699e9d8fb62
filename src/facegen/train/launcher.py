"""How the train_gan step runs training: in its own process, or as DDP on every GPU of its node.

``torchrun`` starts ``facegen.train.ddp_main`` ``nproc_per_node`` times through torch.distributed's elastic launcher
(the API torchrun itself is built on: a c10d rendezvous on this node's loopback, worker monitoring, restarts), on the
inputs written to disk; ``single`` calls the same :func:`facegen.train.ddp_main.run_job` in this process. Either
way the outputs are ddp_main's: OUT/generator, OUT/checkpoint/last.pt, OUT/summary.json. Several nodes are the
Kubeflow PyTorchJob's business (docs/operations.md), not the step's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facegen.config_keys import dataclass_from_dict
from facegen.data.shards import ShardSet
from facegen.train.config import TrainingConfig
from facegen.train.ddp_main import Reporting, run_job, write_job
from facegen.train.job_outputs import SUMMARY_FILE

LAUNCHERS = ("single", "torchrun")


@dataclass(frozen=True)
class LauncherConfig:
    """The ``launcher`` parameter of the train_gan step."""

    type: str = "single"  # single: train in the step's process | torchrun: DDP, one process per GPU
    nproc_per_node: int = 1  # torchrun: processes (= GPUs the step's pod asks for)
    max_restarts: int = 0  # torchrun: restarts of all workers after one fails (they resume from the checkpoint)

    def __post_init__(self) -> None:
        if self.type not in LAUNCHERS:
            raise ValueError(f"launcher.type must be one of {LAUNCHERS}, got {self.type!r}")
        if self.nproc_per_node < 1 or self.max_restarts < 0:
            raise ValueError(
                f"launcher.nproc_per_node must be >= 1 and max_restarts >= 0, got {self.nproc_per_node}, "
                f"{self.max_restarts}"
            )
        if self.type == "single" and (self.nproc_per_node, self.max_restarts) != (1, 0):
            raise ValueError("launcher.type single trains in one process: nproc_per_node 1, max_restarts 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "LauncherConfig":
        """From the step's YAML; an unknown key is a ValueError naming it."""
        return dataclass_from_dict(cls, values, "launcher")


def train(
    launcher: LauncherConfig,
    images: np.ndarray | ShardSet,
    config: TrainingConfig,
    out: Path,
    *,
    resume: bool = True,
    reporting: Reporting | None = None,
    labels: np.ndarray | None = None,
    sample_weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Run one training job as ``launcher`` says and return its summary; the outputs are under ``out``."""
    if launcher.type == "single":
        return run_job(
            images, config, out, labels=labels, sample_weights=sample_weights, reporting=reporting, resume=resume
        )
    args = write_job(
        out.parent / "inputs", config, images, labels=labels, sample_weights=sample_weights, reporting=reporting
    )
    launch(launcher, [*args, "--out", str(out), *(["--resume"] if resume else [])])
    return json.loads((out / SUMMARY_FILE).read_text())


def launch(launcher: LauncherConfig, ddp_main_args: list[str]) -> None:
    """``torchrun --standalone --nproc-per-node N --max-restarts M -m facegen.train.ddp_main ARGS``, in-process.

    A worker that fails (after the restarts) raises torch's ChildFailedError with its rank, exit code and traceback.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    threads = os.environ.get("OMP_NUM_THREADS") or str(worker_threads(launcher.nproc_per_node))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=launcher.nproc_per_node,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # a free port of the loopback interface: one node, nothing else listens
        local_addr="127.0.0.1",
        max_restarts=launcher.max_restarts,
        monitor_interval=1.0,
    )
    with environment(OMP_NUM_THREADS=threads):  # the agent hands its own OMP_NUM_THREADS to every worker
        elastic_launch(config, sys.executable)("-m", "facegen.train.ddp_main", *ddp_main_args)


def worker_threads(nproc_per_node: int) -> int:
    """Intra-op threads per worker: this node's cores split between its workers.

    torchrun's CLI sets OMP_NUM_THREADS (to 1) for more than one worker; elastic_launch, the API it is built on and
    the one used here, does not, so each worker would start a thread per core and N workers oversubscribe the cores
    N-fold (a 2-worker CPU run of the embedded default took ~20 s a step instead of ~0.3 s).
    """
    return max(1, (os.cpu_count() or 1) // nproc_per_node)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration (the workers inherit them), then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
