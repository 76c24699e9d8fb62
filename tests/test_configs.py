"""configs/: the rendered environment configs are up to date, overlays cannot introduce unknown keys, and every
config's knobs are ones the library reads (a typo is an error naming it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from facegen.config_render import ENVIRONMENTS, load_overlay, merge, render, stale
from facegen.data.quality import QualityConfig
from facegen.models.registry import build_discriminator, build_generator
from facegen.train.config import TrainingConfig
from facegen.train.launcher import LauncherConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: Rendered configs of the training_from_job pipeline (a finished training job's generator instead of train_gan).
FROM_JOB = ("k8s_from_job",)
TRAINING_ENVIRONMENTS = tuple(name for name in ENVIRONMENTS if name not in FROM_JOB)


def test_rendered_configs_are_up_to_date() -> None:
    assert stale(CONFIGS) == [], "edit configs/base.yaml + configs/env/*.yaml, then run: make configs"


def test_a_rendered_config_says_it_is_generated_and_keeps_the_overlay_header() -> None:
    text = render(CONFIGS, "gpu")
    assert text.startswith("# GENERATED from configs/base.yaml + configs/env/gpu.yaml")
    assert "zenml pipeline run pipelines.training.training -c configs/gpu.yaml" in text


def test_overlay_keys_merge_replace_and_unknown_ones_are_errors() -> None:
    base = {"steps": {"a": {"parameters": {"x": 1, "model": {"width": 64, "norm": "batch"}, "tags": [1, 2]}}}}
    text = "steps: {a: {parameters: {x: 2, tags: [3], model: !replace {w_dim: 512}}, settings: {s: 1}}}"
    overlay = load_overlay(text)
    merged = merge(base, overlay)
    assert merged["steps"]["a"]["parameters"] == {"x": 2, "model": {"w_dim": 512}, "tags": [3]}
    assert merged["steps"]["a"]["settings"] == {"s": 1}  # ZenML's own section may be added
    assert base["steps"]["a"]["parameters"]["x"] == 1  # the base is not modified
    with pytest.raises(ValueError, match=r"overlay key 'steps.a.parameters.blur_treshold' is not in the base"):
        merge(base, {"steps": {"a": {"parameters": {"blur_treshold": 7.0}}}})


def test_add_adds_a_key_the_base_lacks_and_only_such_a_key() -> None:
    base = {"parameters": {"seed": 0}, "steps": {"train": {"parameters": {"x": 1}}}}
    overlay = load_overlay(
        "parameters: {remote: !add '${REMOTE}'}\nsteps:\n  train: !delete\n  pickup: !add {tracker: t}"
    )
    assert merge(base, overlay) == {
        "parameters": {"seed": 0, "remote": "${REMOTE}"},
        "steps": {"pickup": {"tracker": "t"}},
    }
    with pytest.raises(ValueError, match=r"overlay adds 'parameters.seed', which the base config has: set it without"):
        merge(base, load_overlay("parameters: {seed: !add 1}"))


def test_the_from_job_config_is_the_k8s_run_with_the_pickup_in_place_of_train_gan() -> None:
    k8s = yaml.safe_load((CONFIGS / "k8s.yaml").read_text())
    from_job = yaml.safe_load((CONFIGS / "k8s_from_job.yaml").read_text())
    assert from_job["parameters"] == {**k8s["parameters"], "job_remote": "${FACEGEN_DDP_REMOTE}"}
    assert "schedule" not in from_job and from_job["settings"] == k8s["settings"]  # started by hand, same pods
    data_and_gates = {name: step for name, step in k8s["steps"].items() if name != "train_gan"}
    # the same data-step knobs: the data steps hit the cache of the k8s run whose dataset the job trained on
    assert from_job["steps"] == {**data_and_gates, "pickup_training_job": {"experiment_tracker": "facegen-mlflow"}}


def test_each_pipeline_has_exactly_the_steps_its_configs_configure() -> None:
    """ZenML only warns about a configured step its pipeline lacks, and a step left out runs with defaults."""
    from pipelines.training import training
    from pipelines.training_from_job import training_from_job

    training.prepare()
    training_from_job.prepare(job_remote="s3://bucket/ddp/job")
    for pipeline, names in ((training, TRAINING_ENVIRONMENTS), (training_from_job, FROM_JOB)):
        for name in names:
            assert set(yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["steps"]) == set(pipeline.invocations)


@pytest.mark.parametrize("name", TRAINING_ENVIRONMENTS)
def test_every_environment_config_names_only_known_knobs(name: str) -> None:
    steps = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["steps"]
    QualityConfig.from_dict(steps["quality_filter"]["parameters"]["quality"])
    training = TrainingConfig.from_dict(steps["train_gan"]["parameters"]["training"])
    model = {**training.model, "resolution": 32}
    build_generator(training.architecture, model), build_discriminator(training.architecture, model)
    LauncherConfig.from_dict(steps["train_gan"]["parameters"]["launcher"])


@pytest.mark.parametrize("name", ["k8s", "kubeflow"])
def test_the_gpu_pod_runs_one_torchrun_worker_per_gpu_it_asks_for(name: str) -> None:
    step = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["steps"]["train_gan"]
    (orchestrator,) = step["settings"].values()
    gpus = int(orchestrator["pod_settings"]["resources"]["requests"]["nvidia.com/gpu"])
    launcher = LauncherConfig.from_dict(step["parameters"]["launcher"])
    assert (launcher.type, launcher.nproc_per_node) == ("torchrun", gpus)


def test_the_attributes_config_names_only_known_quality_knobs() -> None:
    steps = yaml.safe_load((CONFIGS / "attributes.yaml").read_text())["steps"]
    assert QualityConfig.from_dict(steps["quality_filter"]["parameters"]["quality"]).face_check is not None


def test_unknown_quality_and_training_keys_are_errors_naming_them() -> None:
    with pytest.raises(ValueError, match=r"unknown quality key\(s\) \['min_sides'\]; allowed: .*'min_side'"):
        QualityConfig.from_dict({"min_sides": 64})
    with pytest.raises(ValueError, match=r"unknown quality.face_check key\(s\) \['min_score'\]"):
        QualityConfig.from_dict({"face_check": {"enabled": True, "min_score": 3}})
    with pytest.raises(ValueError, match=r"unknown quality.feedback key\(s\) \['min_blur_score'\]"):
        QualityConfig.from_dict({"feedback": {"min_blur_score": 690.0}})
    with pytest.raises(ValueError, match=r"unknown training key\(s\) \['epoch'\]"):
        TrainingConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match=r"unknown training.augment key\(s\) \['flip'\]"):
        TrainingConfig.from_dict({"augment": {"flip": 0.5}})
    with pytest.raises(ValueError, match=r"unknown launcher key\(s\) \['nprocs'\]"):
        LauncherConfig.from_dict({"type": "torchrun", "nprocs": 2})
    with pytest.raises(ValueError, match="launcher.type must be one of"):
        LauncherConfig.from_dict({"type": "mpirun"})


def test_quality_settings_round_trip() -> None:
    config = QualityConfig.from_dict(
        yaml.safe_load((CONFIGS / "local.yaml").read_text())["steps"]["quality_filter"]["parameters"]["quality"]
    )
    assert QualityConfig.from_dict(config.to_dict()) == config
    assert QualityConfig.from_dict(QualityConfig().to_dict()) == QualityConfig()  # face check off: null
