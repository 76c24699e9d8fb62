"""`facegen-attributes`: training loop on a tiny slice of real faces, inference on tensors and files, tagging and
label audit, the held-out split, and the MLflow round trip (register, alias, load by alias)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from facegen.attributes_model.bundle import load_bundle, save_bundle
from facegen.attributes_model.data import MISSING, encode_labels, holdout_mask, pack_faces, split_frame
from facegen.attributes_model.inference import AttributeClassifier, AttributePredictions, tag_frame
from facegen.attributes_model.metrics import evaluate_predictions
from facegen.attributes_model.network import HEADS
from facegen.attributes_model.registry import load_attribute_classifier, log_attribute_model
from facegen.attributes_model.training import AttributeTrainingConfig, train_attribute_model
from facegen.data.labels import parse_utkface_name
from facegen.gates import decide_attribute_promotion
from facegen.registry.model_registry import apply_promotion, register_version
from facegen.registry.names import ATTRIBUTES_MODEL_NAME

SIZE = 32


@pytest.fixture(scope="module")
def slice_(utkface_zip: Path, face_members: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """128 real labelled faces: a frame like the manifest's kept rows, and the faces packed at 32 px."""
    uris = [f"zip://{utkface_zip.resolve()}!/{m}" for m in face_members[:128]]
    frame = pd.DataFrame(
        [{"uri": u, "sha256": f"{i:064x}", "status": "kept", **parse_utkface_name(u)} for i, u in enumerate(uris)]
    )
    return frame, pack_faces(uris, SIZE)


@pytest.fixture(scope="module")
def trained(slice_, tmp_path_factory) -> tuple[AttributeClassifier, Path]:
    frame, images = slice_
    labels = encode_labels(frame)
    config = AttributeTrainingConfig(
        input_size=SIZE, batch_size=32, frozen_epochs=1, epochs=1, trainable_from=4, max_steps=4, num_threads=2
    )
    epochs = []
    result = train_attribute_model(
        images[:96],
        {k: v[:96] for k, v in labels.items()},
        images[96:],
        {k: v[96:] for k, v in labels.items()},
        config,
        on_epoch=lambda e, entry: epochs.append(entry),
    )
    assert result.steps == 4 and [e["phase"] for e in epochs] == ["frozen", "unfrozen"]
    assert all(np.isfinite(e["loss"]) for e in epochs)
    assert set(result.report) == set(HEADS) and result.report["gender"]["n"] == 32
    bundle = save_bundle(tmp_path_factory.mktemp("bundle"), result.model, input_size=SIZE, extra={"note": "test"})
    return AttributeClassifier.from_bundle(bundle), bundle


def test_training_without_cached_stem_runs_too(slice_) -> None:
    frame, images = slice_
    labels = encode_labels(frame)
    config = AttributeTrainingConfig(
        input_size=SIZE, batch_size=16, frozen_epochs=0, epochs=1, trainable_from=0, max_steps=1
    )
    result = train_attribute_model(
        images[:32],
        {k: v[:32] for k, v in labels.items()},
        images[32:40],
        {k: v[32:40] for k, v in labels.items()},
        config,
    )
    assert result.steps == 1 and result.history[-1]["phase"] == "unfrozen"


def test_inference_on_tensors_in_every_layout(trained, slice_) -> None:
    classifier, _ = trained
    _, images = slice_
    nchw = classifier.predict(torch.from_numpy(images[:8]))
    for probabilities in nchw.probabilities.values():
        assert probabilities.shape[0] == 8 and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    nhwc = classifier.predict(images[:8].transpose(0, 2, 3, 1))  # channels last, numpy
    signed = classifier.predict(torch.from_numpy(images[:8]).float() / 127.5 - 1, value_range=(-1, 1))
    bigger = classifier.predict(torch.nn.functional.interpolate(torch.from_numpy(images[:8]).float() / 255, 64))
    for name in HEADS:
        np.testing.assert_allclose(nhwc.probabilities[name], nchw.probabilities[name], atol=1e-5)
        np.testing.assert_allclose(signed.probabilities[name], nchw.probabilities[name], atol=1e-3)
        assert bigger.probabilities[name].shape == nchw.probabilities[name].shape
    frame = nchw.to_frame()
    assert list(frame.columns) == [f"{kind}_{n}" for n in HEADS for kind in ("predicted", "confidence")]
    assert frame["predicted_gender"].isin(["female", "male"]).all()


def test_inference_on_files_matches_tensors(trained, slice_, utkface_zip: Path, face_members, tmp_path) -> None:
    classifier, _ = trained
    frame, images = slice_
    from_zip = classifier.predict_files(frame["uri"].tolist()[:4])
    with zipfile.ZipFile(utkface_zip) as archive:
        paths = []
        for member in face_members[:4]:
            path = tmp_path / Path(member).name
            path.write_bytes(archive.read(member))
            paths.append(path)
    from_folder = classifier.predict_files(paths)
    from_tensor = classifier.predict(images[:4])
    for name in HEADS:
        np.testing.assert_allclose(from_zip.probabilities[name], from_tensor.probabilities[name], atol=1e-5)
        np.testing.assert_allclose(from_folder.probabilities[name], from_tensor.probabilities[name], atol=1e-5)


def test_bundle_round_trip_is_exact(trained, slice_) -> None:
    classifier, bundle = trained
    model, spec = load_bundle(bundle)
    assert spec["input_size"] == SIZE and spec["note"] == "test"
    again = AttributeClassifier(model, spec).predict(slice_[1][:4])
    first = classifier.predict(slice_[1][:4])
    for name in HEADS:
        np.testing.assert_array_equal(again.probabilities[name], first.probabilities[name])


def _predictions(rows: list[dict[str, tuple[str, float]]]) -> AttributePredictions:
    """Fake predictions: per row, {head: (class, confidence)} (rest of the mass spread evenly)."""
    probabilities = {}
    for name, classes in HEADS.items():
        matrix = np.zeros((len(rows), len(classes)))
        for i, row in enumerate(rows):
            value, confidence = row[name]
            matrix[i] = (1 - confidence) / (len(classes) - 1)
            matrix[i, classes.index(value)] = confidence
        probabilities[name] = matrix
    return AttributePredictions(probabilities)


def test_tagging_fills_unlabelled_rows_and_audits_labels() -> None:
    frame = pd.DataFrame(
        {
            "uri": ["a", "b", "c", "d"],
            "gender": [None, None, "male", "male"],
            "age_bin": [None, None, "20-29", "20-29"],
            "ethnicity": [None, None, "White", "White"],
        }
    )
    predictions = _predictions(
        [
            {"gender": ("female", 0.95), "age_bin": ("30-39", 0.85), "ethnicity": ("Asian", 0.9)},  # confident
            {"gender": ("male", 0.6), "age_bin": ("3-9", 0.5), "ethnicity": ("Black", 0.95)},  # mostly unsure
            {"gender": ("female", 0.97), "age_bin": ("30-39", 0.95), "ethnicity": ("White", 0.99)},  # contradicts
            {"gender": ("male", 0.99), "age_bin": ("60-69", 0.95), "ethnicity": ("White", 0.7)},  # age far off
        ]
    )
    tagged = tag_frame(frame, predictions, min_confidence=0.8, audit_confidence=0.9)

    assert tagged["attr_gender"].tolist() == ["female", None, "male", "male"]
    assert tagged["attr_gender_source"].tolist() == ["predicted", None, "label", "label"]
    assert tagged["attr_ethnicity"].tolist() == ["Asian", "Black", "White", "White"]
    assert pd.isna(tagged.loc[0, "label_audit"]) and pd.isna(tagged.loc[1, "label_audit"])
    assert tagged.loc[2, "label_audit"] == "gender: label male, predicted female (0.97)"  # 30-39 is a neighbour bin
    assert tagged.loc[3, "label_audit"] == "age_bin: label 20-29, predicted 60-69 (0.95)"
    assert (tagged["attribute_confidence"] > 0).all() and tagged.loc[1, "attribute_confidence"] < 0.7


def test_holdout_split_is_seeded_by_content() -> None:
    shas = pd.Series([f"{i:064x}" for i in range(2000)])
    mask = holdout_mask(shas, fraction=0.1, seed=0)
    assert 150 < mask.sum() < 250
    np.testing.assert_array_equal(
        mask, holdout_mask(shas.sample(frac=1, random_state=1).sort_index(), fraction=0.1, seed=0)
    )
    assert (mask != holdout_mask(shas, fraction=0.1, seed=1)).any()
    manifest = pd.DataFrame({"sha256": shas, "status": "kept", "gender": "male"})
    manifest.loc[:9, "status"] = "quarantined"
    train, holdout = split_frame(manifest, holdout_fraction=0.1, seed=0)
    assert len(train) + len(holdout) == 1990 and not set(train["sha256"]) & set(holdout["sha256"])


def test_metrics_on_known_confusions() -> None:
    truth = {
        "gender": np.array([0, 0, 1, 1, MISSING]),
        "age_bin": np.array([0, 1, 2, 3, 4]),
        "ethnicity": np.array([0, 0, 0, 0, 1]),
    }
    predicted = {
        "gender": np.array([0, 1, 1, 1, 0]),
        "age_bin": np.array([0, 1, 2, 3, 4]),
        "ethnicity": np.array([0, 0, 0, 0, 0]),
    }
    report = evaluate_predictions(truth, predicted)
    assert report["gender"]["accuracy"] == 0.75 and report["gender"]["balanced_accuracy"] == 0.75
    assert report["gender"]["confusion"] == [[1, 1], [0, 2]] and report["gender"]["n"] == 4
    assert report["ethnicity"]["accuracy"] == 0.8 and report["ethnicity"]["balanced_accuracy"] == 0.5


def test_registered_model_loads_by_alias(trained, slice_, mlflow_tracking) -> None:
    classifier, bundle = trained
    with pytest.raises(LookupError, match="pipelines.attributes.attributes"):
        load_attribute_classifier(mlflow_tracking, ATTRIBUTES_MODEL_NAME, "production")
    with mlflow.start_run():
        info = log_attribute_model(bundle)
    metrics = {"holdout_gender_accuracy": 0.8}
    version = register_version(
        info.model_uri, name=ATTRIBUTES_MODEL_NAME, tags={"fit_key": "abc"}, metrics=metrics, client=mlflow_tracking
    )
    apply_promotion(mlflow_tracking, version, decide_attribute_promotion(metrics, {"gender_accuracy": 0.9}))
    tags = mlflow_tracking.get_model_version(ATTRIBUTES_MODEL_NAME, version.version).tags
    assert tags["beats_baseline"] == "False" and "does not beat the baseline 0.9000" in tags["promotion_reasons"]
    with pytest.raises(LookupError, match="no registered model facegen-attributes@production"):
        load_attribute_classifier(mlflow_tracking, ATTRIBUTES_MODEL_NAME, "production")  # the alias did not move
    apply_promotion(mlflow_tracking, version, decide_attribute_promotion(metrics, {"gender_accuracy": 0.7}))

    loaded, registered = load_attribute_classifier(mlflow_tracking, ATTRIBUTES_MODEL_NAME, "production")
    assert registered.version == version.version
    np.testing.assert_allclose(
        loaded.predict(slice_[1][:4]).probabilities["gender"],
        classifier.predict(slice_[1][:4]).probabilities["gender"],
        atol=1e-6,
    )
    pyfunc = mlflow.pyfunc.load_model(f"models:/{ATTRIBUTES_MODEL_NAME}@production")
    out = pyfunc.predict(pd.DataFrame({"uri": slice_[0]["uri"].tolist()[:3]}))
    assert len(out) == 3 and "confidence_ethnicity" in out.columns
