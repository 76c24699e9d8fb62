"""Ingest and quality filter on real faces plus deliberately broken files: every file is accounted for."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from facegen.data.manifest import MANIFEST_COLUMNS, build_manifest, manifest_hash
from facegen.data.quality import QualityConfig, assess_quality, quarantine_summary

MIN_SIDE = 64
BLUR_THRESHOLD = 7.0  # ~2% of UTKFace faces score lower (measured on all 23,207: p1 6.3, p5 8.8, p50 31.5)
CONFIG = QualityConfig(min_side=MIN_SIDE, blur_threshold=BLUR_THRESHOLD)


@pytest.fixture(scope="module")
def faces(utkface_zip: Path) -> dict[str, bytes]:
    """Six real UTKFace faces (name -> JPEG bytes), the first in sorted member order."""
    with zipfile.ZipFile(utkface_zip) as archive:
        names = sorted(archive.namelist())[:6]
        return {name.rsplit("/", 1)[-1]: archive.read(name) for name in names}


def _jpeg(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **save_args)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory: pytest.TempPathFactory, faces: dict[str, bytes]) -> Path:
    """Real faces next to every kind of file the quality filter must quarantine."""
    root = tmp_path_factory.mktemp("messy")
    for name, data in faces.items():
        (root / name).write_bytes(data)
    first_name, first = next(iter(faces.items()))
    face = Image.open(io.BytesIO(first)).convert("RGB")
    (root / "copy_of_first.jpg").write_bytes(first)  # sorts after the original, so the original is kept
    (root / "blurred.jpg").write_bytes(_jpeg(face.filter(ImageFilter.GaussianBlur(4))))
    (root / "truncated.jpg").write_bytes(first[: len(first) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not an image")
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "tiny.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait (rotate 90°)
    (root / "rotated.jpg").write_bytes(_jpeg(face.crop((0, 40, 200, 160)), exif=exif))
    (root / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(_jpeg(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    (root / "notes.txt").write_text("not listed")
    return root


def test_manifest_describes_every_image_without_decoding(messy_folder: Path, faces: dict[str, bytes]) -> None:
    built = build_manifest(str(messy_folder), progress=False)
    manifest = built.set_index("name")

    assert list(built.columns) == list(MANIFEST_COLUMNS)
    assert len(manifest) == len(faces) + 8
    assert manifest["status"].eq("pending").all() and manifest["reason"].isna().all()
    real = manifest.loc[list(faces)]
    assert real["label_source"].eq("filename").all() and real["label_error"].isna().all()
    assert (real["width"] == 200).all() and (real["format"] == "JPEG").all()
    assert manifest.loc["empty.jpg", "n_bytes"] == 0
    assert manifest.loc[["empty.jpg", "text.jpg"], ["width", "height", "mode", "format"]].isna().all().all()
    assert manifest.loc["truncated.jpg", "width"] == 200  # the header is intact; only a full decode fails
    assert (manifest.loc["rotated.jpg", "width"], manifest.loc["rotated.jpg", "height"]) == (120, 200)
    assert manifest.loc["copy_of_first.jpg", "sha256"] == manifest.loc[next(iter(faces)), "sha256"]
    malformed = manifest.loc["39_1_20170116174525125.jpg.chip.jpg"]
    assert pd.isna(malformed["gender"]) and "expected 4" in malformed["label_error"]
    assert manifest.loc["tiny.png", ["label_source", "label_error"]].isna().all()


def test_quality_quarantines_each_broken_file_with_its_reason(messy_folder: Path, faces: dict[str, bytes]) -> None:
    manifest = build_manifest(str(messy_folder), progress=False)

    assessed = assess_quality(manifest, config=CONFIG, progress=False)

    assert assessed["uri"].tolist() == manifest["uri"].tolist()  # same rows, same order
    by_name = assessed.set_index("name")
    assert by_name.loc[list(faces), "status"].eq("kept").all()
    assert by_name.loc[["rotated.jpg", "39_1_20170116174525125.jpg.chip.jpg"], "status"].eq("kept").all()
    expected = {
        "truncated.jpg": "undecodable",
        "empty.jpg": "undecodable",
        "text.jpg": "undecodable",
        "tiny.png": "too_small",
        "blurred.jpg": "blurry",
        "copy_of_first.jpg": "duplicate_sha256",
    }
    for name, reason in expected.items():
        assert (by_name.loc[name, "status"], by_name.loc[name, "reason"]) == ("quarantined", reason), name
    assert "truncated" in by_name.loc["truncated.jpg", "detail"]
    assert "cannot identify image file" in by_name.loc["text.jpg", "detail"]
    assert by_name.loc["copy_of_first.jpg", "detail"] == f"duplicate of {messy_folder / next(iter(faces))}"
    assert by_name.loc["blurred.jpg", "blur_score"] < BLUR_THRESHOLD <= by_name.loc[list(faces), "blur_score"].min()
    assert quarantine_summary(assessed) == {
        "unsafe_path": 0,
        "feedback_unlisted": 0,
        "feedback_missing": 0,
        "decompression_bomb": 0,
        "undecodable": 3,
        "too_small": 1,
        "grayscale": 0,
        "blurry": 1,
        "no_face": 0,
        "duplicate_sha256": 1,
        "near_duplicate": 0,
        "low_confidence": 0,
    }
    assert assessed["status"].eq("kept").sum() + assessed["status"].eq("quarantined").sum() == len(manifest)


def test_unsafe_zip_members_are_recorded_and_stay_quarantined(tmp_path: Path, faces: dict[str, bytes]) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in faces.items():
            out.writestr(name, data)
        out.writestr("../escape.jpg", next(iter(faces.values())))

    manifest = build_manifest(str(archive), progress=False)
    assessed = assess_quality(manifest, config=CONFIG, progress=False)

    unsafe = assessed[assessed["name"] == "escape.jpg"].iloc[0]
    assert unsafe["uri"] == f"zip://{archive}!/../escape.jpg"
    assert (unsafe["status"], unsafe["reason"]) == ("quarantined", "unsafe_path")
    assert "'..'" in unsafe["detail"]
    assert assessed["status"].eq("kept").sum() == len(faces)
    assert quarantine_summary(assessed)["unsafe_path"] == 1


def test_real_faces_are_kept(utkface_zip: Path) -> None:
    manifest = build_manifest(str(utkface_zip), max_images=60, seed=11, progress=False)

    assessed = assess_quality(manifest, config=CONFIG, progress=False)

    assert set(assessed["reason"].dropna()) <= {"blurry"}
    assert assessed["status"].eq("kept").mean() >= 0.9
    assert assessed["label_source"].eq("filename").all()


def test_seeded_subset_is_deterministic(utkface_zip: Path) -> None:
    first = build_manifest(str(utkface_zip), max_images=25, seed=3, progress=False)
    again = build_manifest(str(utkface_zip), max_images=25, seed=3, progress=False, workers=1)
    other = build_manifest(str(utkface_zip), max_images=25, seed=4, progress=False)

    pd.testing.assert_frame_equal(first, again)
    assert len(first) == 25 and first["uri"].is_unique and first["uri"].is_monotonic_increasing
    assert set(first["uri"]) != set(other["uri"])
    assert manifest_hash(first) == manifest_hash(first.sample(frac=1.0, random_state=0))
    assert manifest_hash(first) != manifest_hash(other)


def test_empty_source_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")

    with pytest.raises(ValueError, match=f"no images found in source {tmp_path}"):
        build_manifest(str(tmp_path), progress=False)


def test_an_image_gone_missing_after_ingest_fails_instead_of_passing_as_undecodable(
    tmp_path: Path, faces: dict[str, bytes]
) -> None:
    """Storage faults are not bad images: the run stops and names the file, nothing is quietly quarantined."""
    for name, data in list(faces.items())[:3]:
        (tmp_path / name).write_bytes(data)
    manifest = build_manifest(str(tmp_path), progress=False)
    vanished = Path(manifest["uri"].iloc[0])
    vanished.unlink()
    with pytest.raises(OSError, match=vanished.name):
        assess_quality(manifest, config=CONFIG, progress=False)
