"""A tiny but real `facegen-attributes` model for pipeline tests: MobileNetV2 from the offline ImageNet weights,
fine-tuned for a few steps on real faces, registered as ``facegen-attributes@production`` on a given MLflow server.

Its accuracy is poor (it saw 96 faces); the pipeline tests need the real model path (registry, pyfunc, tensors),
not good predictions. Real quality figures come from `make attributes` (docs/benchmarks.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from facegen.attributes_model.bundle import save_bundle
from facegen.attributes_model.data import encode_labels, pack_faces
from facegen.attributes_model.inference import AttributeClassifier
from facegen.attributes_model.registry import log_attribute_model
from facegen.attributes_model.scoring import SCORED_AT, score_at_resolutions
from facegen.attributes_model.training import AttributeTrainingConfig, train_attribute_model
from facegen.data.labels import parse_utkface_name
from facegen.registry.model_registry import register_version
from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME
from tests.mlflow_server import use_tracking_uri

SIZE = 32
#: Generator resolutions the tiny model is scored at (the pipeline tests train 16 px generators).
SCORED_RESOLUTIONS = (16, 32)
#: Every this-many-th face of the whole zip is scored: spread over all ages (the sorted first members are not),
#: so every group has held-out faces and the fairness correction has a full confusion matrix.
SCORING_STRIDE = 50


def train_tiny_attribute_bundle(utkface_zip: Path, members: list[str], out_dir: Path) -> Path:
    """Four optimiser steps on 128 real faces (96 train, 32 held out), scored at 16 and 32 px on ~460 other faces
    spread over the zip; returns the bundle directory."""
    uris = [f"zip://{Path(utkface_zip).resolve()}!/{m}" for m in members[:128]]
    frame = pd.DataFrame([parse_utkface_name(u) for u in uris])
    labels, images = encode_labels(frame), pack_faces(uris, SIZE)
    config = AttributeTrainingConfig(
        input_size=SIZE, batch_size=32, frozen_epochs=1, epochs=1, trainable_from=4, max_steps=4, num_threads=2
    )
    result = train_attribute_model(
        images[:96], {k: v[:96] for k, v in labels.items()}, images[96:], {k: v[96:] for k, v in labels.items()}, config
    )
    with zipfile.ZipFile(utkface_zip) as archive:
        spread = sorted(n for n in archive.namelist() if n.endswith(".jpg") and n.count("_") == 3)[::SCORING_STRIDE]
    scored_uris = [f"zip://{Path(utkface_zip).resolve()}!/{m}" for m in spread if m not in set(members[:128])]
    scored_labels = encode_labels(pd.DataFrame([parse_utkface_name(u) for u in scored_uris]))
    scored = score_at_resolutions(
        AttributeClassifier(result.model, {"input_size": SIZE}), scored_uris, scored_labels, SCORED_RESOLUTIONS
    )
    return save_bundle(out_dir, result.model, input_size=SIZE, extra={"note": "tiny test model", SCORED_AT: scored})


def register_production_attribute_model(bundle: Path, tracking_uri: str) -> str:
    """Log and register ``bundle`` on ``tracking_uri`` and point ``production`` at it; returns the version."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("attributes")
    # Not mlflow.set_experiment: it would leave a process-wide active experiment id that other servers lack.
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("attributes")
    with use_tracking_uri(tracking_uri):
        with mlflow.start_run(experiment_id=experiment_id, run_name="tiny-attribute-model"):
            info = log_attribute_model(bundle)
        version = register_version(
            info.model_uri, name=ATTRIBUTES_MODEL_NAME, tags={"note": "tiny test model"}, client=client
        )
        client.set_registered_model_alias(ATTRIBUTES_MODEL_NAME, ATTRIBUTES_ALIAS, version.version)
    return version.version
