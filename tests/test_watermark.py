"""The invisible watermark on real faces (UTKFace upscaled to 256²): what it must survive and what it must not claim.

Tolerances come from benchmarks/watermark_robustness.py (docs/benchmarks.md, "Watermark"), with margin: there
≥ 96 % of 200 faces read back per required transform with mean bit accuracy ≥ 0.99, and no read named a wrong
payload. Here, on the first 8 faces (high-contrast portraits of very old people, harder than the average face): at
least 6 read back the right version and hash, none reads a wrong one, and the mean share of the 48 code bits right
before error correction is ≥ 0.95. One of them reads 2 bits wrong even unattacked and is not found: such misses are
in the rates above.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facegen.provenance.watermark import (
    MIN_READ_SIDE,
    MIN_WATERMARK_SIDE,
    _code_bits,
    embed_watermark,
    read_code_bits,
    read_watermark,
)
from tests.conftest import read_face

MIN_MEAN_BIT_ACCURACY = 0.95
MIN_FOUND = 6  # of 8 faces
MIN_PSNR_DB = 36.0


def faces_256(utkface_zip: Path, members: list[str]) -> list[np.ndarray]:
    with zipfile.ZipFile(utkface_zip) as archive:
        return [read_face(archive, member, 256).transpose(1, 2, 0).copy() for member in members]


@pytest.fixture(scope="module")
def faces(utkface_zip: Path, face_members: list[str]) -> list[np.ndarray]:
    return faces_256(utkface_zip, face_members[:8])


def jpeg_q75(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=75)
    return np.asarray(Image.open(buffer).convert("RGB"))


def half_size(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2), Image.BICUBIC))


def crop_10_percent(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[h // 10 :, w // 10 :]


def test_round_trip_reads_version_and_hash_and_is_imperceptible(faces: list[np.ndarray]) -> None:
    readings = []
    for i, face in enumerate(faces):
        marked = embed_watermark(face, version=40 + i, model_hash="9f3c2ab7e01d4c5e8f6a7b8c9d0e1f2a")
        assert marked.shape == face.shape and marked.dtype == np.uint8
        assert cv2.PSNR(marked, face) >= MIN_PSNR_DB
        readings.append((i, read_watermark(marked)))
    found = [(i, r) for i, r in readings if r.found]
    assert len(found) >= MIN_FOUND
    assert all((r.version, r.model_hash) == (40 + i, "9f3c") and r.bit_accuracy >= 0.9 for i, r in found)


@pytest.mark.parametrize(
    "transform", [jpeg_q75, half_size, crop_10_percent], ids=["jpeg_q75", "resize_0.5x", "crop_10%"]
)
def test_payload_survives_required_transforms(faces: list[np.ndarray], transform) -> None:
    accuracies, found = [], 0
    for i, face in enumerate(faces):
        version, model_hash = 1000 + i, f"{0xA5C0 + i:04x}"
        copy = transform(embed_watermark(face, version, model_hash))
        _, soft = read_code_bits(copy)
        accuracies.append(np.mean((soft > 0) == _code_bits(version, model_hash).astype(bool)))
        reading = read_watermark(copy)
        if reading.found:
            assert (reading.version, reading.model_hash) == (version, model_hash)
            found += 1
    assert found >= MIN_FOUND
    assert np.mean(accuracies) >= MIN_MEAN_BIT_ACCURACY


def test_unmarked_real_faces_are_not_found(utkface_zip: Path, face_members: list[str]) -> None:
    readings = [read_watermark(face) for face in faces_256(utkface_zip, face_members[100:130])]
    assert [r.found for r in readings] == [False] * 30
    assert all(r.version is None and r.model_hash is None and r.bit_accuracy is None for r in readings)


def test_a_different_version_reads_differently(faces: list[np.ndarray]) -> None:
    first = read_watermark(embed_watermark(faces[0], 7, "00ff"))
    second = read_watermark(embed_watermark(faces[0], 8, "00ff"))
    assert (first.version, second.version) == (7, 8)


def test_faces_under_the_minimum_side_are_refused_by_name(faces: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match=f"{MIN_WATERMARK_SIDE}×{MIN_WATERMARK_SIDE}"):
        embed_watermark(faces[0][:255], 1, "abcd")
    with pytest.raises(ValueError, match=str(MIN_WATERMARK_SIDE)):
        embed_watermark(half_size(faces[0]), 1, "abcd")


def test_bad_payload_and_bad_arrays_are_clear_errors(faces: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="0..65535"):
        embed_watermark(faces[0], 70000, "abcd")
    with pytest.raises(ValueError, match="hex"):
        embed_watermark(faces[0], 1, "run-xyz")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        read_watermark(faces[0].astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        embed_watermark(faces[0][..., 0], 1, "abcd")


def test_images_under_the_read_minimum_read_as_not_found(faces: list[np.ndarray]) -> None:
    marked = embed_watermark(faces[0], 5, "beef")
    small = np.asarray(Image.fromarray(marked).resize((MIN_READ_SIDE - 1, MIN_READ_SIDE - 1), Image.BICUBIC))
    assert not read_watermark(small).found
