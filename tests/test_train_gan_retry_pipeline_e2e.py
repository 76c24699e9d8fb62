"""Resume after a lost worker, through the pipeline: the train_gan step (two torchrun workers, gloo) loses a worker to
SIGKILL mid-training; ZenML's step retry fetches the step's checkpoint from the artifact store and ends with exactly
the generator of an uninterrupted run, counters continued (tests/train_gan_retry_run.py does the runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# slow (make test-all): a minute of two torchrun workers in a ZenML pipeline; tests/test_resume_after_kill.py and
# tests/test_ddp.py keep the kill-and-resume and 2-worker resume behaviour in make test
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_killed_train_gan_worker_is_retried_from_the_stores_checkpoint(
    utkface_zip: Path, facegen_home: Path, mlflow_server: str, tmp_path: Path
) -> None:
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
        [sys.executable, "tests/train_gan_retry_run.py", str(utkface_zip)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])

    assert outcome["status"] == "completed"
    assert outcome["killed_at_store_step"] >= 10  # a worker really died mid-training
    straight, retried = outcome["straight"], outcome["retried"]
    assert straight["world_size"] == retried["world_size"] == 2
    assert straight["resumed_from_step"] == 0
    assert outcome["killed_at_store_step"] <= retried["resumed_from_step"] < straight["generator_steps"] == 160
    assert retried["generator_steps"] == 160 and retried["images_seen"] == straight["images_seen"]
    assert retried["checkpoint_uri"] != straight["checkpoint_uri"]  # one key per pipeline run, shared by its retries
    assert outcome["identical"], "the retried run's generator differs from the uninterrupted run's"
