"""C2PA content credentials on faces and `facegen verify`: what a marked face says, whom it trusts, and what happens
to copies — stripped, tampered, signed by someone else — and to files that are no image at all."""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facegen.cli import main
from facegen.provenance.c2pa_manifest import DIGITAL_SOURCE_TYPE, FaceProvenance, ManifestSigner
from facegen.provenance.credentials import (
    TRUST_ANCHOR_FILE,
    CredentialsError,
    ProvenanceConfig,
    SigningCredentials,
    signing_problem,
    write_local_credentials,
)
from facegen.provenance.marking import FaceMarker, MarkingUnavailable, mark_face
from facegen.provenance.verify import MAX_PIXELS, format_report, verify_files
from facegen.serve.imaging import encode_face

RUN_ID = "3f9a1c0e5b7d4e2fa0c1d2e3f4a5b6c7"
PROVENANCE = FaceProvenance(
    "facegen-generator", "7", RUN_ID, seed=1234, truncation=0.7, attributes={"gender": "female"}
)
ENCODING = {"jpeg_quality": 90, "png_compress_level": 1}


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_local_credentials(tmp_path_factory.mktemp("ours"), common_name="facegen test")


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_local_credentials(tmp_path_factory.mktemp("theirs"), common_name="someone else")


@pytest.fixture(scope="module")
def photo(utkface_zip: Path, face_members: list[str]) -> bytes:
    """A real UTKFace photograph as shipped (200×200 JPEG)."""
    with zipfile.ZipFile(utkface_zip) as archive:
        return archive.read(face_members[0])


@pytest.fixture(scope="module")
def face(photo: bytes) -> np.ndarray:
    """Face-like content at 64² (the generator's resolution here); served at 256² it gets the watermark too."""
    return np.asarray(Image.open(io.BytesIO(photo)).convert("RGB").resize((64, 64), Image.LANCZOS))


def marked(face: np.ndarray, credentials: Path, *, size: int = 256, fmt: str = "jpeg") -> bytes:
    signer = ManifestSigner(SigningCredentials.load(credentials))
    return mark_face(face, PROVENANCE, signer, size=size, fmt=fmt, **ENCODING)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_a_marked_face_verifies_as_ours_and_says_what_made_it(face, ours, tmp_path, fmt):
    [report] = verify_files([write(tmp_path, f"face.{fmt}", marked(face, ours, fmt=fmt))], ours / TRUST_ANCHOR_FILE)

    assert report.error is None and report.media_type == f"image/{fmt}" and report.size == (256, 256)
    manifest = report.manifest
    assert (manifest.state, manifest.trusted, manifest.failures) == ("valid", True, [])
    assert manifest.signer == "facegen test signer (facegen)"
    assert manifest.digital_source_type == DIGITAL_SOURCE_TYPE
    assert (manifest.generator, manifest.generator_version) == ("facegen-generator", "7")
    assert manifest.parameters == {
        "seed": 1234,
        "truncation": 0.7,
        "attributes": {"gender": "female"},
        "model_run_id": RUN_ID,
    }
    assert (report.watermark.found, report.watermark.version, report.watermark.model_hash) == (True, 7, RUN_ID[:4])
    text = format_report(report)
    assert "C2PA manifest: VALID, trusted signer: facegen test signer (facegen)" in text
    assert "trainedAlgorithmicMedia" in text and "facegen-generator version 7" in text and "seed: 1234" in text


def test_a_version_as_mlflows_registry_returns_it_an_int_is_signed_as_its_string(face, ours, tmp_path):
    """MLflow's SQL store hands ModelVersion.version back as an int (typed str): a champion's faces still sign."""
    provenance = FaceProvenance("facegen-generator", 7, RUN_ID, seed=1, truncation=1.0)
    data = mark_face(face, provenance, ManifestSigner(SigningCredentials.load(ours)), size=64, fmt="png", **ENCODING)

    [report] = verify_files([write(tmp_path, "face.png", data)], ours / TRUST_ANCHOR_FILE)
    assert report.manifest.state == "valid" and report.manifest.generator_version == "7"


def test_a_small_face_carries_the_manifest_only_and_it_stays_lean(face, ours, tmp_path):
    data = marked(face, ours, size=64, fmt="png")
    [report] = verify_files([write(tmp_path, "small.png", data)], ours / TRUST_ANCHOR_FILE)

    assert (report.manifest.state, report.manifest.trusted, report.size) == ("valid", True, (64, 64))
    assert not report.watermark.found
    # No thumbnail and no root certificate in the manifest: under 3 KB on top of the same face unmarked.
    assert len(data) - len(encode_face(face, size=64, fmt="png", **ENCODING)) < 3000


def test_a_manifest_signed_by_another_ca_reads_as_untrusted_and_names_its_signer(face, ours, theirs, tmp_path):
    [report] = verify_files([write(tmp_path, "other.jpg", marked(face, theirs))], ours / TRUST_ANCHOR_FILE)

    assert (report.manifest.state, report.manifest.trusted) == ("valid", False)
    assert report.manifest.signer == "someone else signer (facegen)"
    assert any(failure.startswith("signingCredential.untrusted") for failure in report.manifest.failures)
    assert "UNTRUSTED signer (does not chain to the configured CA): someone else signer" in format_report(report)


def test_a_stripped_copy_has_no_manifest_but_keeps_the_watermark(face, ours, tmp_path):
    with Image.open(io.BytesIO(marked(face, ours))) as image:
        stripped = io.BytesIO()
        image.save(stripped, format="PNG")  # what a re-save or a screenshot tool does: pixels only
    [report] = verify_files([write(tmp_path, "stripped.png", stripped.getvalue())], ours / TRUST_ANCHOR_FILE)

    assert report.manifest.state == "absent"
    assert (report.watermark.found, report.watermark.version, report.watermark.model_hash) == (True, 7, RUN_ID[:4])
    assert "C2PA manifest: absent" in format_report(report)


def test_tampered_pixels_make_the_manifest_invalid(face, ours, tmp_path):
    data = bytearray(marked(face, ours))
    data[-200] ^= 0xFF  # inside the entropy-coded image data, after the manifest
    [report] = verify_files([write(tmp_path, "tampered.jpg", bytes(data))], ours / TRUST_ANCHOR_FILE)

    assert report.error is None and report.manifest.state == "invalid"
    assert any(failure.startswith("assertion.dataHash.mismatch") for failure in report.manifest.failures)
    assert "C2PA manifest: INVALID, altered after signing or corrupt; claimed signer: facegen test signer" in (
        format_report(report)
    )


def test_a_real_photo_has_neither_manifest_nor_watermark(photo, ours, tmp_path):
    [report] = verify_files([write(tmp_path, "photo.jpg", photo)], ours / TRUST_ANCHOR_FILE)

    assert (report.error, report.size, report.manifest.state, report.watermark.found) == (
        None,
        (200, 200),
        "absent",
        False,
    )


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width``×``height`` (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_bad_files_get_their_own_error_and_the_others_are_still_reported(face, ours, tmp_path):
    good = marked(face, ours)
    files = [
        write(tmp_path, "notes.jpg", b"these are notes, not a JPEG"),
        write(tmp_path, "truncated.jpg", good[: len(good) // 2]),
        write(tmp_path, "huge.png", _png_claiming(8_000, 8_000)),
        write(tmp_path, "bomb.png", _png_claiming(20_000, 20_000)),
        tmp_path / "missing.png",
        write(tmp_path, "good.jpg", good),
    ]
    reports = verify_files(files, ours / TRUST_ANCHOR_FILE)

    assert [report.path for report in reports] == [str(path) for path in files]
    errors = [report.error for report in reports]
    assert errors[0] == "not an image (no format Pillow reads)"
    assert errors[1].startswith("truncated or corrupt image data")
    assert errors[2] == f"image too large: 8000×8000 pixels (limit {MAX_PIXELS:,})"
    assert errors[3].startswith("image too large: Image size (400000000 pixels) exceeds limit")
    assert errors[4].startswith("cannot read: No such file")
    assert errors[5] is None and reports[5].manifest.trusted


def test_verify_command_reports_every_file_and_exits_1_when_one_is_unreadable(face, ours, tmp_path):
    good, bad = write(tmp_path, "good.jpg", marked(face, ours)), write(tmp_path, "bad.png", b"\x89PNG\r\n")
    anchor = str(ours / TRUST_ANCHOR_FILE)

    text = CliRunner().invoke(main, ["verify", str(bad), str(good), "--trust-anchor", anchor])
    assert text.exit_code == 1
    assert f"{bad}: ERROR" in text.output and "C2PA manifest: VALID, trusted signer" in text.output

    as_json = CliRunner().invoke(main, ["verify", str(good), "--trust-anchor", anchor, "--json"])
    assert as_json.exit_code == 0
    report = json.loads(as_json.output)
    assert report["manifest"]["parameters"]["seed"] == 1234 and report["watermark"]["version"] == 7


def test_provenance_init_writes_credentials_once_and_verify_trusts_them(face, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no configs/serve.yaml here: the defaults, $FACEGEN_HOME/provenance
    first = CliRunner().invoke(main, ["provenance", "init"])
    assert first.exit_code == 0 and "wrote a local CA" in first.output
    directory = tmp_path / "home" / "provenance"
    chain = (directory / "signer-chain.pem").read_bytes()
    assert (directory / "signer-key.pem").stat().st_mode & 0o077 == 0

    again = CliRunner().invoke(main, ["provenance", "init"])
    assert again.exit_code == 0 and "usable: kept" in again.output
    assert (directory / "signer-chain.pem").read_bytes() == chain

    path = write(tmp_path, "face.jpg", marked(face, directory))
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 0 and "VALID, trusted signer: facegen local signer" in result.output


def test_expired_or_missing_credentials_fail_closed_unless_marking_is_off(face, tmp_path, caplog):
    expired = write_local_credentials(
        tmp_path / "expired", valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3), leaf_days=1
    )
    problem = signing_problem(ProvenanceConfig(credentials_dir=expired))
    assert problem is not None and "expired at" in problem
    missing = signing_problem(ProvenanceConfig(credentials_dir=tmp_path / "nothing"))
    assert missing is not None and "signing credentials missing" in missing and "facegen provenance init" in missing

    marker = FaceMarker(ProvenanceConfig(credentials_dir=expired))
    with pytest.raises(MarkingUnavailable, match="expired"):
        marker.encode(face, PROVENANCE, size=64, fmt="jpeg", **ENCODING)

    with caplog.at_level("WARNING", logger="facegen.provenance"):
        off = FaceMarker(ProvenanceConfig(enabled=False, credentials_dir=tmp_path / "nothing"))
    assert "PROVENANCE MARKING IS SWITCHED OFF" in caplog.text
    assert off.problem() is None and signing_problem(off.config) is None
    with Image.open(io.BytesIO(off.encode(face, PROVENANCE, size=64, fmt="jpeg", **ENCODING))) as plain:
        assert plain.size == (64, 64) and [marker for marker, _ in plain.applist] == ["APP0"]  # JFIF only, no C2PA


def test_credentials_that_do_not_belong_together_are_refused(ours, theirs, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "signer-chain.pem").write_bytes((ours / "signer-chain.pem").read_bytes())
    (mixed / "signer-key.pem").write_bytes((theirs / "signer-key.pem").read_bytes())
    with pytest.raises(CredentialsError, match="is not the key of the first certificate"):
        SigningCredentials.load(mixed)
