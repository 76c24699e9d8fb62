"""From `facegen feedback-export` to the quality filter: exported faces keep the labels they were requested with,
are judged at the generator's resolution by thresholds that still tell sharp from blurred faces, and every file of a
feedback folder is accounted for (an error, or a row with its reason)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from facegen.cli import main
from facegen.data.faces import FaceCheck
from facegen.data.manifest import FEEDBACK_CSV, build_feedback_manifest, build_manifest
from facegen.data.quality import FeedbackThresholds, QualityConfig, assess_quality, origin_summary
from facegen.models.bundle import save_generator_bundle
from facegen.models.registry import build_generator
from facegen.serve.feedback import FeedbackStore
from facegen.serve.feedback_export import CSV_COLUMNS, face_file_name
from tests.serve_fixtures import register_champion

#: Thresholds measured for 16 px faces (docs/data.md "Feedback faces"); the defaults are for 32 px.
THRESHOLDS_16 = FeedbackThresholds(min_side=16, blur_threshold=1430.0)
FULL = {"gender": "female", "age_bin": "70+", "ethnicity": "Asian"}


def _write_folder(root: Path, faces: dict[str, np.ndarray], attributes: str = "{}") -> Path:
    """PNGs plus a feedback.csv listing them (every face requested with the JSON ``attributes``), as exported."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / FEEDBACK_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        for seed, (name, face) in enumerate(faces.items()):
            Image.fromarray(face).save(root / name)
            writer.writerow({"file": name, "origin": "feedback", "seed": seed, "attributes": attributes})
    return root


def _faces(real_faces_32: np.ndarray, n: int) -> dict[str, np.ndarray]:
    return {f"feedback_v1_s{i}.png": face.transpose(1, 2, 0) for i, face in enumerate(real_faces_32[:n])}


def test_exported_faces_come_back_at_native_size_with_their_requested_labels(
    mlflow_server: str, facegen_home: Path, tmp_path: Path
) -> None:
    model = {"resolution": 16, "width": 8, "conditioning": ["gender", "age_bin", "ethnicity"]}
    bundle = save_generator_bundle(tmp_path / "bundle", "dcgan", model, build_generator("dcgan", model))
    name = register_champion(mlflow_server, bundle, prefix="roundtrip")
    with FeedbackStore(tmp_path / "feedback.db") as store:
        for seed, attributes in ((1, FULL), (2, {"gender": "male"}), (3, {})):
            store.add(model_name=name, model_version="1", seed=seed, truncation=1.0, rating=5, attributes=attributes)
    out = tmp_path / "export"
    out.mkdir()
    Image.new("RGB", (16, 16)).save(out / "from_an_earlier_export.png")

    args = [
        "feedback-export",
        "--out",
        str(out),
        "--db",
        str(tmp_path / "feedback.db"),
        "--tracking-uri",
        mlflow_server,
    ]
    cli = CliRunner().invoke(main, args, env={"FACEGEN_SERVE_MODEL_NAME": name, "FACEGEN_HOME": str(facegen_home)})
    assert cli.exit_code == 0, cli.output
    assert "3 face(s)" in cli.output and "1 other image(s)" in cli.output and "feedback_unlisted" in cli.output

    manifest = build_feedback_manifest(str(out), progress=False).set_index("name")
    assert manifest["origin"].eq("feedback").all()
    assert manifest.loc["from_an_earlier_export.png", "reason"] == "feedback_unlisted"
    exported = manifest.drop(index="from_an_earlier_export.png")
    assert exported["status"].eq("pending").all() and (exported["width"] == 16).all()
    full = exported.loc[face_file_name("1", 1, 1.0, FULL)]
    assert (full["gender"], full["age_bin"], full["ethnicity"]) == ("female", "70+", "Asian")
    assert full["label_source"] == "requested" and exported["age"].isna().all()  # a request names a bin, not an age
    male = exported.loc[face_file_name("1", 2, 1.0, {"gender": "male"})]
    assert male["gender"] == "male" and male["age_bin"] is None and male["ethnicity"] is None
    anyone = exported.loc[face_file_name("1", 3, 1.0, {})]  # nothing requested: no labels, tagging predicts them
    assert anyone["gender"] is None and anyone["label_source"] is None and anyone["label_error"] is None

    # An untrained generator draws near-flat images: at a 64 px minimum they are merely too_small; at the 16 px
    # feedback thresholds their size passes and the blur check, calibrated at that size, catches them.
    assert (
        assess_quality(
            exported.reset_index(), config=QualityConfig(feedback=FeedbackThresholds(min_side=64)), progress=False
        )["reason"]
        .eq("too_small")
        .all()
    )
    screened = assess_quality(exported.reset_index(), config=QualityConfig(feedback=THRESHOLDS_16), progress=False)
    assert screened["reason"].eq("blurry").all(), screened[["reason", "detail"]]
    assert (screened["blur_score"] < 50).all()  # real faces at 16 px: 1st percentile ~1280


def test_feedback_thresholds_keep_real_faces_at_32px_and_catch_blurred_ones(
    real_faces_32: np.ndarray, tmp_path: Path
) -> None:
    # Real faces at a generator's size stand in for well-generated ones: the measured pass rates are alike (docs).
    faces = _faces(real_faces_32, 64)
    blur = ImageFilter.GaussianBlur(1)
    blurred = {
        name.replace(".png", "_blurred.png"): np.asarray(Image.fromarray(face).filter(blur))
        for name, face in faces.items()
    }
    folder = _write_folder(tmp_path / "feedback", {**faces, **blurred})
    config = QualityConfig(face_check=FaceCheck())  # the default feedback thresholds: 32 px

    screened = assess_quality(build_feedback_manifest(str(folder), progress=False), config=config, progress=False)

    sharp = screened[~screened["name"].str.contains("_blurred")]
    soft = screened[screened["name"].str.contains("_blurred")]
    assert sharp["status"].eq("kept").mean() >= 0.95, sharp["reason"].value_counts()
    assert soft["reason"].eq("blurry").all(), soft["reason"].value_counts()
    assert "(feedback threshold)" in soft["detail"].iloc[0]
    assert origin_summary(screened) == {
        "ingested_source": 0,
        "kept_source": 0,
        "ingested_feedback": 128,
        "kept_feedback": int(sharp["status"].eq("kept").sum()),
    }
    # The same files as photos: the photo thresholds apply, and a 32 px image is too small for them.
    as_photos = assess_quality(build_manifest(str(folder), progress=False), config=config, progress=False)
    assert as_photos["reason"].eq("too_small").all()


def test_a_folder_is_accounted_for_file_by_file(real_faces_32: np.ndarray, tmp_path: Path) -> None:
    faces = _faces(real_faces_32, 3)
    folder = _write_folder(tmp_path / "feedback", faces, attributes='{"gender": "female"}')
    (folder / "feedback_v1_s0.png").unlink()  # listed, but gone
    Image.fromarray(real_faces_32[5].transpose(1, 2, 0)).save(folder / "dropped_in.png")  # there, but not listed

    manifest = build_feedback_manifest(str(folder), progress=False).set_index("name")

    assert sorted(manifest.index) == ["dropped_in.png", *sorted(faces)]
    missing = manifest.loc["feedback_v1_s0.png"]
    assert (missing["status"], missing["reason"]) == ("quarantined", "feedback_missing")
    assert missing["detail"] == "listed in feedback.csv but feedback_v1_s0.png is not in the folder"
    assert missing["gender"] == "female"  # the request is still on record
    assert manifest.loc["dropped_in.png", "reason"] == "feedback_unlisted"
    assert manifest.loc[["feedback_v1_s1.png", "feedback_v1_s2.png"], "status"].eq("pending").all()
    screened = assess_quality(manifest.reset_index(), config=QualityConfig(), progress=False)
    assert screened.set_index("name").loc[["feedback_v1_s0.png", "dropped_in.png"], "reason"].tolist() == [
        "feedback_missing",
        "feedback_unlisted",
    ]  # ingest's reasons survive the filter


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ("not json", "not JSON"),
        ('["female"]', "not a JSON object"),
        ('{"hair": "red"}', "unknown attribute"),
        ('{"gender": "x"}', "requested gender 'x' is not one of"),
    ],
)
def test_bad_requested_attributes_give_no_labels_and_a_reason(
    real_faces_32: np.ndarray, tmp_path: Path, attributes: str, why: str
) -> None:
    _write_folder(tmp_path / "feedback", _faces(real_faces_32, 1), attributes=attributes)

    row = build_feedback_manifest(str(tmp_path / "feedback"), progress=False).iloc[0]

    assert row["status"] == "pending" and row["gender"] is None and row["label_source"] is None
    assert why in row["label_error"]


def test_a_folder_without_a_usable_feedback_csv_is_an_error(real_faces_32: np.ndarray, tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "feedback", _faces(real_faces_32, 2))
    (folder / FEEDBACK_CSV).unlink()
    with pytest.raises(FileNotFoundError, match="has no feedback.csv: not a `facegen feedback-export` folder"):
        build_feedback_manifest(str(folder), progress=False)
    for table, message in [
        ("", "is empty"),
        ("file,attributes\nfeedback_v1_s0.png,{}\n", r"lacks column\(s\) \['origin'\]"),
        ("file,origin,attributes\nfeedback_v1_s0.png,source,{}\n", "origin is not 'feedback'"),
        ("file,origin,attributes\n../x.png,feedback,{}\n", "must name a file directly in the folder"),
        ("file,origin,attributes\nfeedback_v1_s0.png,feedback,{}\nfeedback_v1_s0.png,feedback,{}\n", "more than once"),
    ]:
        (folder / FEEDBACK_CSV).write_text(table)
        with pytest.raises(ValueError, match=message):
            build_feedback_manifest(str(folder), progress=False)
    archive = tmp_path / "feedback.zip"
    with zipfile.ZipFile(archive, "w") as out:
        buffer = io.BytesIO()
        Image.fromarray(real_faces_32[0].transpose(1, 2, 0)).save(buffer, format="PNG")
        out.writestr("feedback_v1_s0.png", buffer.getvalue())
    with pytest.raises(ValueError, match="must be a folder written by `facegen feedback-export`"):
        build_feedback_manifest(str(archive), progress=False)


def test_an_export_without_faces_ingests_as_no_rows(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "feedback", {})
    assert build_feedback_manifest(str(folder), progress=False).empty
