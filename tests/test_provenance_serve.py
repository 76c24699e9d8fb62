"""Faces leave the service marked: a served face verifies as ours and names its version and seed; with the signing
certificate expired the service serves no face (503 with the reason) unless marking is switched off."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from facegen.provenance.c2pa_manifest import DIGITAL_SOURCE_TYPE
from facegen.provenance.credentials import TRUST_ANCHOR_FILE, ProvenanceConfig, write_local_credentials
from facegen.provenance.marking import MarkingUnavailable
from facegen.provenance.verify import trust_context, verify_bytes
from facegen.serve.app import create_app
from facegen.serve.feedback import FeedbackStore
from facegen.serve.feedback_export import export_feedback
from tests.provenance_fixtures import marking_config, signing_credentials
from tests.serve_fixtures import register_model, serve_settings
from tests.serve_fixtures import tiny_generators as _tiny_generators_fixture

tiny_generators = _tiny_generators_fixture  # the session fixture, used by this module's tests


@pytest.fixture(scope="module")
def model_name(mlflow_server: str, tiny_generators) -> str:
    return register_model(mlflow_server, tiny_generators, champion="2", prefix="provenance")


def verify_served(data: bytes):
    context = trust_context((signing_credentials() / TRUST_ANCHOR_FILE).read_text())
    return verify_bytes("served", data, context)


def test_a_served_face_verifies_as_ours_and_carries_version_and_seed(mlflow_server, model_name, tmp_path):
    run_id = MlflowClient(mlflow_server).get_model_version(model_name, "2").run_id
    settings = serve_settings(mlflow_server, model_name, tmp_path, allowed_sizes=(16, 64, 256))
    with TestClient(create_app(settings)) as client:
        response = client.get("/generate", params={"seed": 42, "size": 256, "truncation": 0.8})
        assert response.status_code == 200, response.text
        report = verify_served(response.content)

        batch = client.post("/generate", json={"seeds": [7, 8], "size": 64, "format": "png"})
        assert batch.status_code == 200, batch.text
        batch_reports = [verify_served(base64.b64decode(image["data_base64"])) for image in batch.json()["images"]]

    manifest = report.manifest
    assert (manifest.state, manifest.trusted, manifest.digital_source_type) == ("valid", True, DIGITAL_SOURCE_TYPE)
    assert (manifest.generator, manifest.generator_version) == (model_name, "2")
    assert manifest.parameters == {"seed": 42, "truncation": 0.8, "attributes": {}, "model_run_id": run_id}
    assert (report.watermark.found, report.watermark.version, report.watermark.model_hash) == (True, 2, run_id[:4])
    assert [r.manifest.parameters["seed"] for r in batch_reports] == [7, 8]
    assert all(r.manifest.trusted and r.media_type == "image/png" and not r.watermark.found for r in batch_reports)


def test_exported_feedback_faces_verify_as_ours(mlflow_server, model_name, tmp_path):
    with FeedbackStore(tmp_path / "feedback.db") as store:
        store.add(model_name=model_name, model_version="1", seed=11, truncation=0.5, rating=5)
    result = export_feedback(
        tmp_path / "feedback.db",
        tmp_path / "out",
        min_rating=4,
        tracking_uri=mlflow_server,
        provenance=marking_config(),
        model_name=model_name,
    )
    [path] = result.written
    report = verify_served(path.read_bytes())
    assert (report.manifest.trusted, report.manifest.generator_version) == (True, "1")
    assert report.manifest.parameters["seed"] == 11 and report.manifest.parameters["truncation"] == 0.5

    expired = write_local_credentials(
        tmp_path / "expired", valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10), leaf_days=2
    )
    with pytest.raises(MarkingUnavailable, match="expired"):
        export_feedback(
            tmp_path / "feedback.db",
            tmp_path / "refused",
            min_rating=4,
            tracking_uri=mlflow_server,
            provenance=ProvenanceConfig(credentials_dir=expired),
            model_name=model_name,
        )
    assert not (tmp_path / "refused").exists()


def test_an_expired_signing_certificate_means_no_face_is_served(mlflow_server, model_name, tmp_path):
    expired = write_local_credentials(
        tmp_path / "expired", valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10), leaf_days=2
    )
    settings = serve_settings(mlflow_server, model_name, tmp_path, provenance={"credentials_dir": expired})
    with TestClient(create_app(settings)) as client:
        one = client.get("/generate", params={"seed": 1})
        batch = client.post("/generate", json={"seeds": [1]})
        ready = client.get("/readyz")
    for response in (one, batch):
        assert response.status_code == 503
        assert response.json()["detail"].startswith("faces cannot be marked as synthetic: signing certificate")
        assert "expired at" in response.json()["detail"]
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    assert ready.json()["reason"].startswith("faces cannot be marked as synthetic: signing certificate")


def test_with_marking_switched_off_faces_are_served_unmarked_and_the_start_up_says_so(
    mlflow_server, model_name, tmp_path, caplog
):
    settings = serve_settings(
        mlflow_server, model_name, tmp_path, provenance={"enabled": False, "credentials_dir": tmp_path / "none"}
    )
    with caplog.at_level("WARNING", logger="facegen.provenance"), TestClient(create_app(settings)) as client:
        response = client.get("/generate", params={"seed": 1})
    assert response.status_code == 200
    assert verify_served(response.content).manifest.state == "absent"
    assert "PROVENANCE MARKING IS SWITCHED OFF" in caplog.text
