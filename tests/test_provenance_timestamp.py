"""RFC 3161 time-stamps on face manifests: with a time-stamp authority configured, every signature carries a signing
time the TSA vouches for, so a face stays verifiable after the signing certificate expires; a TSA that does not answer
fails closed. The TSA is OpenSSL's, on 127.0.0.1 (tests/tsa_server.py)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest

from facegen.provenance.c2pa_manifest import FaceProvenance, GridProvenance, ManifestSigner, shown_seeds
from facegen.provenance.credentials import (
    TRUST_ANCHOR_FILE,
    ProvenanceConfig,
    SigningCredentials,
    write_local_credentials,
)
from facegen.provenance.marking import FaceMarker, MarkingUnavailable, mark_face
from facegen.provenance.verify import format_report, verify_files
from tests.tsa_server import running_tsa

PROVENANCE = FaceProvenance("facegen-generator", "3", "0123456789abcdef0123456789abcdef", seed=7, truncation=1.0)
FACE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory):
    with running_tsa(tmp_path_factory.mktemp("tsa")) as authority:
        yield authority


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_local_credentials(tmp_path_factory.mktemp("signer"))


def _anchors(tmp_path: Path, credentials: Path, *extra: bytes) -> Path:
    """A trust-anchor file: our CA, plus the TSA's root when a verifier is to trust its time-stamps."""
    path = tmp_path / "anchors.pem"
    path.write_bytes((credentials / TRUST_ANCHOR_FILE).read_bytes() + b"".join(extra))
    return path


def _verify(tmp_path: Path, data: bytes, anchors: Path):
    path = tmp_path / f"face-{time.monotonic_ns()}.png"
    path.write_bytes(data)
    [report] = verify_files([path], anchors)
    return report


def _sign(credentials: Path, timestamp_url: str | None) -> bytes:
    signer = ManifestSigner(SigningCredentials.load(credentials), timestamp_url)
    return mark_face(FACE, PROVENANCE, signer, size=64, fmt="png")


def test_a_time_stamped_face_says_when_it_was_signed_and_whether_the_tsa_is_trusted(tsa, credentials, tmp_path):
    before = len(tsa.requests)
    data = _sign(credentials, tsa.url)
    assert tsa.requests[before:] == ["application/timestamp-query"]  # one query per signature

    trusted = _verify(tmp_path, data, _anchors(tmp_path, credentials, tsa.ca_pem)).manifest
    assert (trusted.state, trusted.trusted, trusted.timestamp) == ("valid", True, "trusted")
    signed_at = dt.datetime.fromisoformat(trusted.signed_at)
    assert abs((signed_at - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 60

    report = _verify(tmp_path, data, _anchors(tmp_path, credentials))  # our CA only: the TSA is a stranger
    assert (report.manifest.trusted, report.manifest.timestamp) == (True, "untrusted")
    assert "time-stamp by an UNTRUSTED TSA" in format_report(report)


def test_without_a_tsa_the_manifest_says_it_has_no_time_stamp(credentials, tmp_path):
    report = _verify(tmp_path, _sign(credentials, None), _anchors(tmp_path, credentials))
    assert (report.manifest.state, report.manifest.trusted, report.manifest.timestamp) == ("valid", True, "absent")
    assert "no time-stamp (valid only while the signing certificate is)" in format_report(report)


def test_a_time_stamped_face_outlives_its_signing_certificate(tsa, tmp_path):
    lifetime = dt.timedelta(seconds=4)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1) + lifetime
    short_lived = write_local_credentials(tmp_path / "short", valid_from=start, leaf_days=1)  # expires in ~4 s
    stamped, unstamped = _sign(short_lived, tsa.url), _sign(short_lived, None)
    time.sleep(lifetime.total_seconds() + 1)
    anchors = _anchors(tmp_path, short_lived, tsa.ca_pem)

    kept = _verify(tmp_path, stamped, anchors).manifest
    assert (kept.state, kept.trusted, kept.timestamp, kept.failures) == ("valid", True, "trusted", [])
    expired = _verify(tmp_path, unstamped, anchors).manifest
    assert not expired.trusted and any("expired" in failure.lower() for failure in expired.failures), expired


def test_a_tsa_that_does_not_answer_fails_closed_naming_it(credentials, tmp_path):
    down = "http://127.0.0.1:9/"  # the discard port: nothing listens
    with pytest.raises(MarkingUnavailable, match=r"time-stamp authority http://127\.0\.0\.1:9/ failed"):
        _sign(credentials, down)


def test_the_tsa_comes_from_the_environment_for_service_and_pipeline_alike(tsa, credentials, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEGEN_TIMESTAMP_URL", tsa.url)
    config = ProvenanceConfig(credentials_dir=credentials)
    assert config.timestamp_url == tsa.url
    made_by = GridProvenance(PROVENANCE.model_name, PROVENANCE.model_run_id, shown_seeds([7]))
    grid = FaceMarker(config).encode_grid(FACE, made_by)  # any signature the marker makes is time-stamped
    assert _verify(tmp_path, grid, _anchors(tmp_path, credentials, tsa.ca_pem)).manifest.timestamp == "trusted"
    monkeypatch.delenv("FACEGEN_TIMESTAMP_URL")
    assert ProvenanceConfig().timestamp_url is None
