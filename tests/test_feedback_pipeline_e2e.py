"""Well-rated generated faces go back into training: one real ZenML `training` run (tiny config, real MLflow server on
127.0.0.1) whose `ingest.feedback_source` is a folder written by the real `export_feedback`, from a registered
generator and a real FeedbackStore with ratings.

Specifies: the feedback faces are counted apart (`data_ingested_feedback`), kept by the quality filter under the
feedback thresholds with every other check applied, labelled with the attributes they were requested with, and in
the sampling plan and label array the generator was trained on.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.data.label_encoding import LABEL_COLUMNS, UNSPECIFIED, encode_attribute_labels
from facegen.data.labels import parse_utkface_name
from facegen.data.packing import load_square
from facegen.data.sources import zip_entry_uri
from facegen.models.bundle import save_generator_bundle
from facegen.serve.feedback import FeedbackStore
from facegen.serve.feedback_export import export_feedback
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan
from tests.conftest import REPO_ROOT
from tests.provenance_fixtures import marking_config
from tests.serve_fixtures import register_champion
from tests.test_training_pipeline_e2e import BIN, _run, zenml_env  # noqa: F401 - zenml_env is a fixture

# slow (make test-all): a second whole pipeline run; tests/test_feedback_roundtrip.py keeps export → ingest in make test
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


RESOLUTION = 16  # the generator's, and the tiny config's training resolution
CONDITIONING = ["gender", "age_bin", "ethnicity"]
#: Rated 5, seed -> requested attributes. With this generator, 95-100 % of these requests' faces pass the face check.
WELL_RATED = {
    0: {"gender": "female", "age_bin": "20-29", "ethnicity": "White"},
    1: {"gender": "female"},
    2: {"gender": "male"},
    3: {"gender": "male"},
    4: {"gender": "female", "age_bin": "20-29"},
    5: {"gender": "female", "age_bin": "20-29", "ethnicity": "White"},
}
N_PHOTOS = 24
#: Thresholds for 16 px generated faces (docs/data.md "Feedback faces": real faces packed to 16 px).
REGISTERED_NAME = "feedback-e2e-generator"
FEEDBACK_THRESHOLDS = {"min_side": RESOLUTION, "blur_threshold": 1430.0}


def _face_like_generator(utkface_zip: Path, out_dir: Path) -> Path:
    """A conditional DCGAN trained for 350 steps (~7 CPU s) on 233 labelled faces spread over the zip: enough for its
    faces to pass the Haar face check, which a random-init generator's noise never does."""
    with zipfile.ZipFile(utkface_zip) as archive:
        members = sorted(n for n in archive.namelist() if n.endswith(".jpg") and n.count("_") == 3)[::100]
    uris = [zip_entry_uri(str(utkface_zip), member) for member in members]
    images = np.stack([load_square(uri, RESOLUTION).transpose(2, 0, 1) for uri in uris])
    labels = encode_attribute_labels(pd.DataFrame([parse_utkface_name(u) for u in uris]).add_prefix("attr_"))
    model = {"latent_dim": 32, "width": 32, "conditioning": CONDITIONING}
    config = TrainingConfig.from_dict(
        {
            "model": model,
            "epochs": 25,
            "batch_size": 16,
            "grid_size": 16,
            "log_every_steps": 10,
            "device": "cpu",
            "seed": 0,
        }
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two busy cores spin far more than they compute
    try:
        result = train_gan(images, config, labels=labels, progress=False)
    finally:
        torch.set_num_threads(threads)
    return save_generator_bundle(out_dir, "dcgan", result.model_config, result.generator)


@pytest.fixture(scope="module")
def feedback_folder(mlflow_server: str, utkface_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`export_feedback` output for six faces rated 5 (and one rated 2, not exported) of a registered generator."""
    root = tmp_path_factory.mktemp("feedback")
    name = register_champion(mlflow_server, _face_like_generator(utkface_zip, root / "bundle"), prefix="feedback")
    with FeedbackStore(root / "feedback.db") as store:
        for seed, attributes in WELL_RATED.items():
            store.add(model_name=name, model_version="1", seed=seed, truncation=1.0, rating=5, attributes=attributes)
        store.add(model_name=name, model_version="1", seed=9, truncation=1.0, rating=2, attributes={"gender": "male"})
    result = export_feedback(
        root / "feedback.db",
        root / "export",
        min_rating=4,
        tracking_uri=mlflow_server,
        provenance=marking_config(),
        model_name=name,
    )
    assert len(result.written) == len(WELL_RATED) and not result.skipped and not result.unlisted
    return result.out_dir


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory, utkface_zip: Path) -> Path:
    """Real labelled faces, spread over the zip so both genders are there."""
    folder = tmp_path_factory.mktemp("photos")
    with zipfile.ZipFile(utkface_zip) as archive:
        members = sorted(n for n in archive.namelist() if n.endswith(".jpg") and n.count("_") == 3)
        for member in members[50 :: len(members) // N_PHOTOS][:N_PHOTOS]:
            (folder / Path(member).name).write_bytes(archive.read(member))
    return folder


def _config(tmp_path: Path, photos: Path, feedback: Path) -> Path:
    config = yaml.safe_load((REPO_ROOT / "tests/configs/tiny.yaml").read_text())
    steps = config["steps"]
    config["parameters"]["source"] = str(photos)
    steps["ingest"]["parameters"].update(max_images=None, feedback_source=str(feedback))
    # validate_data holds kept feedback faces to these same limits (quality_filter's quality_settings output).
    steps["quality_filter"]["parameters"]["quality"]["feedback"] = FEEDBACK_THRESHOLDS
    steps["train_gan"]["parameters"]["training"]["fid_every_steps"] = 0  # not what this test is about; saves minutes
    # The MLflow server is shared by the session: register under its own name, so the training e2e's version
    # numbers stay its own.
    for step_name in ("export_human_eval", "deploy_gate"):
        steps[step_name]["parameters"]["model_name"] = REGISTERED_NAME
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


INSPECT = """
import json
from zenml.client import Client
run = Client().get_pipeline(name_id_or_prefix="training").last_run
tagged = run.steps["tag_attributes"].outputs["tagged_manifest"][0].load()
plan = run.steps["balance"].outputs["sampling_plan"][0].load()
labels = run.steps["build_dataset"].outputs["training_set"][0].load().labels
feedback = plan["origin"].eq("feedback").to_numpy()
columns = ["name", "origin", "status", "reason", "detail", "gender", "age", "age_bin", "ethnicity", "label_source",
           "attr_gender", "attr_age_bin", "attr_ethnicity", "attr_gender_source"]
mlflow_run_id = run.steps["quality_filter"].run_metadata["mlflow_run_id"]
print(json.dumps({"status": run.status.value, "mlflow_run_id": mlflow_run_id,
                  "tagged": json.loads(tagged[columns].to_json(orient="records")),
                  "plan_feedback_names": plan.loc[feedback, "name"].tolist(),
                  "plan_feedback_labels": labels[feedback].tolist()}))
"""


def test_feedback_faces_are_counted_kept_with_their_labels_and_trained_on(
    zenml_env: dict[str, str], mlflow_server: str, photo_folder: Path, feedback_folder: Path, tmp_path: Path
) -> None:
    _run(
        [
            str(BIN / "zenml"),
            "pipeline",
            "run",
            "pipelines.training.training",
            "-c",
            str(_config(tmp_path, photo_folder, feedback_folder)),
        ],
        zenml_env,
    )
    run = json.loads(_run([str(BIN / "python"), "-c", INSPECT], zenml_env).stdout.strip().splitlines()[-1])
    assert run["status"] == "completed"
    tagged = pd.DataFrame(run["tagged"])
    exported = pd.read_csv(feedback_folder / "feedback.csv")
    feedback = tagged[tagged["origin"].eq("feedback")].set_index("name")

    # counted apart: every exported face, no more
    metrics = MlflowClient(tracking_uri=mlflow_server).get_run(run["mlflow_run_id"]).data.metrics
    assert metrics["data_ingested_feedback"] == len(exported) == len(WELL_RATED)
    assert metrics["data_ingested_source"] == N_PHOTOS
    assert sorted(feedback.index) == sorted(exported["file"])

    # kept under the 16 px feedback thresholds (the photo ones would quarantine all as too_small); the face check
    # still applies (measured: one of the six scores 2 < 3)
    kept = feedback[feedback["status"].eq("kept")]
    assert feedback.loc[feedback["status"].ne("kept"), "reason"].eq("no_face").all(), feedback[["reason", "detail"]]
    assert len(kept) >= len(WELL_RATED) - 2, feedback[["status", "reason", "detail"]]
    assert metrics["data_kept_feedback"] == len(kept)

    # labelled with what was requested: label columns, then the resolved attr_* that balancing and training use
    requested = {row.file: json.loads(row.attributes) for row in exported.itertuples()}
    for name, row in kept.iterrows():
        for attribute in ATTRIBUTE_VALUES:
            for column in (attribute, f"attr_{attribute}"):
                value = None if pd.isna(row[column]) else row[column]
                assert value == requested[name].get(attribute), (name, column)
        assert row["label_source"] == "requested" and row["attr_gender_source"] == "label"
        assert pd.isna(row["age"])  # a request names an age bin, not an age

    # trained on: every kept feedback face is in the sampling plan, with its requested labels in the label array
    assert set(run["plan_feedback_names"]) == set(kept.index)
    for name, label_row in zip(run["plan_feedback_names"], run["plan_feedback_labels"], strict=True):
        for column, index in zip(LABEL_COLUMNS, label_row, strict=True):
            value = requested[name].get(column)
            assert index == (ATTRIBUTE_VALUES[column].index(value) if value else UNSPECIFIED), (name, column)
