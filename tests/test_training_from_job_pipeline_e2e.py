"""The multi-node route end to end: a training job (`facegen.train.ddp_main --remote`, the PyTorchJob's command, here
in this process on the CPU) writes to S3 (moto on 127.0.0.1); the `training_from_job` pipeline, a real ZenML run on
tiny real data against a real MLflow server, picks its generator up, evaluates, gates and registers it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from facegen.models.bundle import load_generator_bundle
from facegen.train import ddp_main
from tests.conftest import REPO_ROOT
from tests.s3_server import aws_env
from tests.test_training_pipeline_e2e import BIN, MODEL, _run, face_folder, zenml_env  # noqa: F401  (fixtures)

# slow (make test-all): a whole pipeline run, 74 s with fixtures on an idle 2-core machine (49 s the test itself);
# tests/test_training_job_pickup.py keeps the pickup in make test
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


BUCKET = "facegen-artifacts"
JOB = {"model": {"latent_dim": 16, "width": 8}, "epochs": 2, "batch_size": 16, "grid_size": 4, "device": "cpu"}

INSPECT = """
import json
from zenml.client import Client
run = Client().get_pipeline(name_id_or_prefix="training_from_job").last_run
pickup = run.steps["pickup_training_job"]
print(json.dumps({"status": run.status.value, "steps": sorted(run.steps), "pickup": dict(pickup.run_metadata),
                  "bundle": str(pickup.outputs["generator_bundle"][0].load()),
                  "gate": run.steps["deploy_gate"].outputs["gate_decision"][0].load()}))
"""


def test_a_jobs_generator_in_s3_is_evaluated_gated_and_registered(
    zenml_env: dict[str, str],  # noqa: F811
    face_folder: Path,  # noqa: F811
    real_faces_32: np.ndarray,
    s3_env: Any,
    s3_server: str,
    mlflow_server: str,
    tmp_path: Path,
) -> None:
    s3_env.create_bucket(Bucket=BUCKET)
    prefix = f"s3://{BUCKET}/ddp/facegen-ddp-x7k2p"
    dataset, job_config, out = tmp_path / "packed.npy", tmp_path / "train.yaml", tmp_path / "job"
    np.save(dataset, np.ascontiguousarray(real_faces_32[:64, :, ::2, ::2]))  # 16², as the pipeline's resolution
    job_config.write_text(yaml.safe_dump(JOB))
    ddp_main.main(["--dataset", str(dataset), "--config", str(job_config), "--out", str(out), "--remote", prefix])

    config = yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text())
    config["parameters"] |= {"source": str(face_folder), "job_remote": prefix}
    config["steps"]["ingest"]["parameters"]["max_images"] = None
    del config["steps"]["train_gan"]  # the job trained it
    config["steps"]["pickup_training_job"] = {"experiment_tracker": "facegen-mlflow"}
    config_path = tmp_path / "from_job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = zenml_env | aws_env(s3_server, tmp_path)  # the pickup step's S3 (a pod's facegen-s3 Secret and endpoint)
    pipeline = "pipelines.training_from_job.training_from_job"
    _run([str(BIN / "zenml"), "pipeline", "run", pipeline, "-c", str(config_path)], env)

    outcome = json.loads(_run([str(BIN / "python"), "-c", INSPECT], env).stdout.strip().splitlines()[-1])
    assert outcome["status"] == "completed"
    assert "pickup_training_job" in outcome["steps"] and "train_gan" not in outcome["steps"]
    assert outcome["pickup"]["job_remote"] == prefix and outcome["pickup"]["generator_steps"] == 2 * 64 // 16
    trained = load_generator_bundle(out / "generator").state_dict()
    picked = load_generator_bundle(Path(outcome["bundle"])).state_dict()
    assert all(torch.equal(picked[name], tensor) for name, tensor in trained.items())  # the job's weights, evaluated

    client = MlflowClient(tracking_uri=mlflow_server)
    version = client.get_model_version(MODEL, str(outcome["gate"]["version"]))
    assert version.tags["gate_status"] in {"passed", "failed", "awaiting_human_eval"}
    run = client.get_run(version.run_id)
    assert run.data.params["training_job"] == prefix and run.data.params["architecture"] == "dcgan"
    assert run.data.metrics["train_images_seen"] == 2 * 64
    for metric in ("fid", "kid_mean", "fid_inf"):
        assert np.isfinite(run.data.metrics[metric]), metric
