"""Run by tests/test_train_gan_retry_pipeline_e2e.py in a fresh process (ZenML reads its store location at import):
the real train_gan step with two torchrun workers in a one-step-after-inputs pipeline, once straight, once with a
worker SIGKILLed mid-training, continued by ZenML's step retry (``retry``) or, the killed run failed, by a new run
with ``resume_from`` its name (``resume_from``). Prints one JSON line: what the test compares.

    python tests/train_gan_retry_run.py UTKFace.zip retry|resume_from
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import mlflow
import pandas as pd
import psutil
import torch
from zenml import get_step_context, pipeline, step
from zenml.client import Client
from zenml.config.retry_config import StepRetryConfig

from facegen.data.shards import ShardSet, write_shards
from facegen.data.sources import open_source
from facegen.models.bundle import load_generator_bundle
from facegen.train.checkpoint import load_checkpoint
from steps.materializers import ShardSetMaterializer
from steps.train_gan import train_gan
from tests.tiny_training import RESUMABLE_TRAINING

LAUNCHER = {"type": "torchrun", "nproc_per_node": 2}
KILL_AFTER_STEP = 10  # a worker dies once the artifact store holds a checkpoint this far along (of 160 steps)


@step(enable_cache=False, output_materializers={"training_set": ShardSetMaterializer})
def faces(
    zip_path: str,
) -> tuple[Annotated[ShardSet, "training_set"], Annotated[Path, "real_features"], Annotated[dict, "balance_shares"]]:
    """64 real faces at 16² in four shards, unlabelled, uniform weights, written into the output as build_dataset
    writes them; no FID during training (no real features needed)."""
    plan = pd.DataFrame({"uri": open_source(zip_path).list_entries()[:64], "sample_weight": 1.0})
    uri = get_step_context().get_output_artifact_uri("training_set")
    return write_shards(plan, uri, resolution=16, images_per_shard=16, progress=False), Path(zip_path).parent, {}


def _pipeline(name: str, retries: int, resume_from: str | None = None) -> Any:
    @pipeline(name=name, enable_cache=False)
    def run(zip_path: str) -> None:
        training_set, real, shares = faces(zip_path)
        retry = StepRetryConfig(max_retries=retries, delay=1) if retries else None
        train_gan.with_options(retry=retry)(
            training_set, real, shares, training=RESUMABLE_TRAINING, launcher=LAUNCHER, resume_from=resume_from
        )

    return run


def _kill_a_worker_mid_training(earlier: set[Path], killed: dict[str, int]) -> None:
    """SIGKILL one ddp_main worker (a child of this process's elastic agent) once this run's checkpoint in the store
    is far enough along (``earlier``: other runs' checkpoints): what a lost GPU or an OOM kill does."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for path in set(_store_checkpoints()) - earlier:
            step_in_store = load_checkpoint(path, torch.device("cpu"))["generator_steps"]
            workers = [
                child
                for child in psutil.Process().children(recursive=True)
                if "facegen.train.ddp_main" in " ".join(child.cmdline())
            ]
            if step_in_store >= KILL_AFTER_STEP and workers:
                workers[-1].send_signal(signal.SIGKILL)
                killed["store_step"] = step_in_store
                return
        time.sleep(0.05)


def _store_checkpoints() -> list[Path]:
    return list((Path(Client().active_stack.artifact_store.path) / "checkpoints").glob("*/train_gan/last.pt"))


def _train_step(name: str) -> Any:
    return Client().get_pipeline(name).last_run.steps["train_gan"]


def main(zip_path: str, mode: str) -> None:
    with mlflow.start_run():  # the step logs into the active run (the stack's MLflow tracker in the real pipeline)
        _pipeline("retry_e2e_straight", retries=0)(zip_path)
        killed: dict[str, int] = {}
        watcher = threading.Thread(
            target=_kill_a_worker_mid_training, args=(set(_store_checkpoints()), killed), daemon=True
        )
        watcher.start()
        if mode == "retry":
            _pipeline("retry_e2e_killed", retries=1)(zip_path)
            continuing = "retry_e2e_killed"
        else:
            try:
                _pipeline("retry_e2e_killed", retries=0)(zip_path)
            except Exception as error:  # noqa: BLE001 - the lost run fails; its status is reported below
                print(f"the killed run failed: {type(error).__name__}", file=sys.stderr)
            lost = Client().get_pipeline("retry_e2e_killed").last_run
            killed["status"] = str(lost.status.value)
            _pipeline("retry_e2e_resumed", retries=0, resume_from=lost.name)(zip_path)
            continuing = "retry_e2e_resumed"
    straight, continued = _train_step("retry_e2e_straight"), _train_step(continuing)
    expected = load_generator_bundle(straight.outputs["generator_bundle"][0].load()).state_dict()
    got = load_generator_bundle(continued.outputs["generator_bundle"][0].load()).state_dict()
    print(
        json.dumps(
            {
                "killed_at_store_step": killed.get("store_step"),
                "killed_status": killed.get("status"),
                "killed_run_id": str(Client().get_pipeline("retry_e2e_killed").last_run.id),
                "straight": dict(straight.run_metadata),
                "continued": dict(continued.run_metadata),
                "status": str(Client().get_pipeline(continuing).last_run.status.value),
                "identical": sorted(expected) == sorted(got) and all(torch.equal(got[k], expected[k]) for k in got),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
