"""Resume after a lost worker, through the pipeline: the train_gan step (two torchrun workers, gloo) loses a worker to
SIGKILL mid-training; ZenML's step retry fetches the step's checkpoint from the artifact store, or, the run failed, a
new run with ``resume_from`` the lost run's name does, and either ends with exactly the generator of an uninterrupted
run, counters continued (tests/train_gan_retry_run.py does the runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# slow (make test-all): a minute (retry) and two (resume_from: 107 s under a load of 5 on 2 cores) of two torchrun
# workers in ZenML pipelines; tests/test_resume_after_kill.py (kill, then --resume or a new run from S3) and
# tests/test_ddp.py keep the kill-and-resume and 2-worker resume behaviour in make test
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _runs(mode: str, utkface_zip: Path, facegen_home: Path, mlflow_server: str, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "FACEGEN_HOME": str(facegen_home),  # signing credentials for the epoch grids
        "MLFLOW_TRACKING_URI": mlflow_server,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "tests/train_gan_retry_run.py", str(utkface_zip), mode],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_killed_train_gan_worker_is_retried_from_the_stores_checkpoint(
    utkface_zip: Path, facegen_home: Path, mlflow_server: str, tmp_path: Path
) -> None:
    outcome = _runs("retry", utkface_zip, facegen_home, mlflow_server, tmp_path)

    assert outcome["status"] == "completed"
    assert outcome["killed_at_store_step"] >= 10  # a worker really died mid-training
    straight, retried = outcome["straight"], outcome["continued"]
    assert straight["world_size"] == retried["world_size"] == 2
    assert straight["resumed_from_step"] == 0
    assert outcome["killed_at_store_step"] <= retried["resumed_from_step"] < straight["generator_steps"] == 160
    assert retried["generator_steps"] == 160 and retried["images_seen"] == straight["images_seen"]
    assert retried["checkpoint_uri"] != straight["checkpoint_uri"]  # one key per pipeline run, shared by its retries
    assert outcome["identical"], "the retried run's generator differs from the uninterrupted run's"


def test_a_new_run_with_resume_from_continues_a_killed_runs_checkpoint(
    utkface_zip: Path, facegen_home: Path, mlflow_server: str, tmp_path: Path
) -> None:
    outcome = _runs("resume_from", utkface_zip, facegen_home, mlflow_server, tmp_path)

    assert outcome["killed_status"] == "failed" and outcome["killed_at_store_step"] >= 10  # no retries: it is lost
    assert outcome["status"] == "completed"
    straight, resumed = outcome["straight"], outcome["continued"]
    assert resumed["resumed_from"].endswith(f"/checkpoints/{outcome['killed_run_id']}/train_gan/last.pt")
    assert outcome["killed_at_store_step"] <= resumed["resumed_from_step"] < straight["generator_steps"] == 160
    assert resumed["generator_steps"] == 160 and resumed["images_seen"] == straight["images_seen"]
    assert resumed["world_size"] == straight["world_size"] == 2
    assert outcome["identical"], "the resumed run's generator differs from the uninterrupted run's"
