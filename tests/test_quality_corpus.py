"""The complete quality filter on real faces plus a generated corpus of every kind of broken or awkward file.

Every file must end kept or quarantined with the right reason, from a folder (with a symlink leading out) and from a
zip (with a ``../`` member); nothing is lost from the manifest.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data.faces import FaceCheck
from facegen.data.manifest import build_manifest
from facegen.data.quality import (
    NEUTRAL_BACKGROUND,
    QUARANTINE_REASONS,
    QualityConfig,
    assess_quality,
    decode_rgb,
    quarantine_summary,
)

CONFIG = QualityConfig(min_side=64, blur_threshold=7.0, grayscale="keep", face_check=FaceCheck())
N_REAL = 5


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` (RGB, 8 bit) with a token amount of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def corpus(utkface_zip: Path) -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, expected reason or None for kept)."""
    with zipfile.ZipFile(utkface_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[: N_REAL + 5]
        real = {n.rsplit("/", 1)[-1]: archive.read(n) for n in names[:N_REAL]}
        # Each converted file starts from a face of its own, so none is a near-duplicate of another.
        sources = [Image.open(io.BytesIO(archive.read(n))).convert("RGB") for n in names[N_REAL:]]
    first_name, first = next(iter(real.items()))
    face = Image.open(io.BytesIO(first)).convert("RGB")
    files: dict[str, tuple[bytes, str | None]] = {name: (data, None) for name, data in real.items()}

    gray16 = (np.asarray(sources[1].convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    rgba = np.dstack([np.asarray(sources[2]), np.full(sources[2].size[::-1], 255, np.uint8)])
    rgba[:20, :20, 3] = 0  # a transparent corner
    adaptive = sources[3].convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette_index = np.asarray(adaptive).copy()
    palette_index[:20, :20] = 63  # index 63 is the transparent one
    palette = Image.fromarray(palette_index, mode="P")
    palette.putpalette(adaptive.getpalette())
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    near = np.clip(np.asarray(face, dtype=np.int16) + 6, 0, 255).astype(np.uint8)  # brighter, re-encoded
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)

    files.update(
        {
            "copy_of_first.jpg": (first, "duplicate_sha256"),
            "near_copy_of_first.jpg": (_encode(Image.fromarray(near), "JPEG", quality=80), "near_duplicate"),
            "truncated.jpg": (first[: len(first) // 2], "undecodable"),
            "zero_bytes.jpg": (b"", "undecodable"),
            "text.jpg": (b"this is not an image", "undecodable"),
            "cmyk.jpg": (_encode(sources[0].convert("CMYK"), "JPEG", quality=95), None),
            "gray16.png": (_encode(Image.fromarray(gray16), "PNG"), None),
            "palette_transparent.png": (_encode(palette, "PNG", transparency=63), None),
            "rgba.png": (_encode(Image.fromarray(rgba, mode="RGBA"), "PNG"), None),
            "exif_rotated.jpg": (
                _encode(sources[4].crop((0, 20, 200, 180)).rotate(90, expand=True), "JPEG", quality=95, exif=exif),
                None,
            ),  # stored sideways; upright once EXIF is applied
            "tiny_8x8.png": (_encode(Image.fromarray(noise[:8, :8]), "PNG"), "too_small"),
            "bomb_100000x100000.png": (_png_declaring(100_000, 100_000), "decompression_bomb"),
            "noise_no_face.png": (_encode(Image.fromarray(noise), "PNG"), "no_face"),
        }
    )
    files["_sources"] = sources  # type: ignore[assignment]  (not a file: the originals, for decoding checks)
    return files


def _files(corpus) -> dict[str, tuple[bytes, str | None]]:
    return {name: value for name, value in corpus.items() if not name.startswith("_")}


def _expectations(corpus) -> dict[str, str | None]:
    return {name: reason for name, (_data, reason) in _files(corpus).items()}


def _check(assessed, expected: dict[str, str | None]) -> None:
    by_name = assessed.set_index("name")
    for name, reason in expected.items():
        row = by_name.loc[name]
        if reason is None:
            assert (row["status"], row["reason"]) == ("kept", None), (name, row["reason"], row["detail"])
        else:
            assert (row["status"], row["reason"]) == ("quarantined", reason), (name, row["reason"], row["detail"])
    assert assessed["status"].isin(["kept", "quarantined"]).all()
    assert set(assessed["reason"].dropna()) <= set(QUARANTINE_REASONS)


def test_folder_corpus_every_file_is_accounted_for(tmp_path: Path, corpus) -> None:
    root = tmp_path / "faces"
    root.mkdir()
    for name, (data, _reason) in _files(corpus).items():
        (root / name).write_bytes(data)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(next(iter(corpus.values()))[0])
    os.symlink(outside, root / "link_outside.jpg")

    manifest = build_manifest(str(root), progress=False)
    assessed = assess_quality(manifest, config=CONFIG, progress=False)

    assert len(assessed) == len(manifest) == len(_files(corpus)) + 1  # the symlink is a row too
    _check(assessed, {**_expectations(corpus), "link_outside.jpg": "unsafe_path"})
    by_name = assessed.set_index("name")
    assert "decompression_bomb" != by_name.loc["bomb_100000x100000.png", "detail"]
    assert "100000" in by_name.loc["bomb_100000x100000.png", "detail"].replace(",", "")
    assert "near duplicate of" in by_name.loc["near_copy_of_first.jpg", "detail"]
    assert bool(by_name.loc["gray16.png", "grayscale"]) and not bool(by_name.loc["cmyk.jpg", "grayscale"])
    assert by_name.loc[[n for n, (_, r) in _files(corpus).items() if r is None], "face_score"].min() >= 3
    summary = quarantine_summary(assessed)
    assert sum(summary.values()) == int(assessed["status"].eq("quarantined").sum())
    assert summary["undecodable"] == 3 and summary["unsafe_path"] == 1


def test_zip_corpus_with_parent_member(tmp_path: Path, corpus) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, (data, _reason) in _files(corpus).items():
            out.writestr(f"faces/{name}", data)
        out.writestr("../escape.jpg", next(iter(corpus.values()))[0])
        out.writestr("/abs/escape2.jpg", next(iter(corpus.values()))[0])

    assessed = assess_quality(build_manifest(str(archive), progress=False), config=CONFIG, progress=False)

    assert len(assessed) == len(_files(corpus)) + 2
    _check(assessed, {**_expectations(corpus), "escape.jpg": "unsafe_path", "escape2.jpg": "unsafe_path"})


def test_grayscale_can_be_dropped(tmp_path: Path, corpus) -> None:
    root = tmp_path / "faces"
    root.mkdir()
    for name in ("gray16.png", "cmyk.jpg"):
        (root / name).write_bytes(corpus[name][0])
    config = QualityConfig(grayscale="drop", near_duplicate_distance=None)

    by_name = assess_quality(build_manifest(str(root), progress=False), config=config, progress=False).set_index("name")

    assert by_name.loc["gray16.png", "reason"] == "grayscale" and by_name.loc["cmyk.jpg", "status"] == "kept"


def test_decoding_converts_awkward_modes_faithfully(corpus) -> None:
    sources = corpus["_sources"]
    cmyk = np.asarray(decode_rgb(corpus["cmyk.jpg"][0]), dtype=np.float32)
    assert np.abs(cmyk - np.asarray(sources[0], dtype=np.float32)).mean() < 8  # colours survive CMYK
    gray16 = np.asarray(decode_rgb(corpus["gray16.png"][0]), dtype=np.float32)
    luma = np.asarray(sources[1].convert("L"), dtype=np.float32)
    assert np.abs(gray16[..., 0] - luma).max() <= 1  # the 16-bit range maps back onto 0..255, not clipped
    for name in ("rgba.png", "palette_transparent.png"):
        decoded = np.asarray(decode_rgb(corpus[name][0]))
        assert decoded.shape == (200, 200, 3)
        assert (decoded[:20, :20] == NEUTRAL_BACKGROUND).all(), name  # transparency on neutral grey
    rotated = decode_rgb(corpus["exif_rotated.jpg"][0])
    assert rotated.size == (200, 160)  # EXIF orientation applied: stored 160×200, shown 200×160
    upright = np.asarray(sources[4].crop((0, 20, 200, 180)), dtype=np.float32)
    assert np.abs(np.asarray(rotated, dtype=np.float32) - upright).mean() < 8
