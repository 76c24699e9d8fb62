"""The face-generator service against a real MLflow server with two tiny real registered versions.

In-process (TestClient, lifespan run) for the API contract; a real ``facegen serve`` process on 127.0.0.1 for the
hot swap under concurrent load and for feedback surviving a SIGKILL.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from facegen.models.bundle import load_generator_bundle, save_generator_bundle
from facegen.models.registry import build_generator
from facegen.models.sampling import seeded_latents, to_uint8
from facegen.serve.app import create_app
from facegen.serve.feedback import FeedbackStore
from facegen.serve.feedback_export import export_feedback
from facegen.serve.imaging import decode_image, encode_face
from facegen.serve.inference import render_faces
from facegen.serve.model_holder import AliasTarget, ModelHolder
from facegen.serve.settings import load_settings
from tests.local_servers import running_facegen_serve
from tests.mlflow_server import use_tracking_uri
from tests.provenance_fixtures import marking_config
from tests.serve_fixtures import (
    RESOLUTION,
    expected_face,
    move_champion,
    register_champion,
    register_model,
    serve_settings,
)
from tests.serve_fixtures import tiny_generators as _tiny_generators_fixture

tiny_generators = _tiny_generators_fixture  # the session fixture, used by this module's tests

TOKEN = "test-admin-token"


@pytest.fixture
def admin_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FACEGEN_TEST_ADMIN_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture(scope="module")
def shared_model(mlflow_server: str, tiny_generators) -> str:
    """A model whose champion stays at version 1 (tests that move the alias register their own)."""
    return register_model(mlflow_server, tiny_generators, champion="1")


def client_for(settings, holder=None) -> TestClient:
    return TestClient(create_app(settings, holder))


def png_face(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return decode_image(response.content)


# --- generation -------------------------------------------------------------------------------------------------


def test_faces_are_determined_by_version_seed_and_truncation(
    mlflow_server: str, tiny_generators, shared_model: str, tmp_path: Path, admin_token: str
) -> None:
    bundle_v1 = tiny_generators.bundles[0]
    with client_for(serve_settings(mlflow_server, shared_model, tmp_path)) as client:
        first = client.get("/generate", params={"seed": 5, "format": "png"})
        face = png_face(first)
        assert face.shape == (RESOLUTION, RESOLUTION, 3)
        assert np.array_equal(face, expected_face(bundle_v1, 5))
        headers = first.headers
        assert headers["x-facegen-model-name"] == shared_model
        assert headers["x-facegen-model-version"] == "1"
        assert headers["x-facegen-seed"] == "5" and headers["x-facegen-truncation"] == "1.0"
        assert headers["x-facegen-size"] == str(RESOLUTION) and headers["cache-control"] == "no-store"

        # Same request, same pixels (not the same bytes: each face's C2PA manifest has its own id); another seed,
        # another face.
        assert np.array_equal(png_face(client.get("/generate", params={"seed": 5, "format": "png"})), face)
        assert not np.array_equal(png_face(client.get("/generate", params={"seed": 6, "format": "png"})), face)

        # The face is the one the registered pyfunc gives for the seed (psi = 1 is no truncation).
        with use_tracking_uri(mlflow_server):
            pyfunc = mlflow.pyfunc.load_model(f"models:/{shared_model}/1").predict(pd.DataFrame({"seed": [5]}))
        assert np.array_equal(pyfunc[0], face)

        # No seed: the server picks one and says which, and that seed reproduces the face.
        random_face = client.get("/generate", params={"format": "png"})
        seed = int(random_face.headers["x-facegen-seed"])
        assert np.array_equal(
            png_face(client.get("/generate", params={"seed": seed, "format": "png"})), png_face(random_face)
        )

        # Truncation: psi scales z toward 0, psi = 0 is one "mean" face for every seed.
        half = client.get("/generate", params={"seed": 5, "truncation": 0.5, "format": "png"})
        assert half.headers["x-facegen-truncation"] == "0.5"
        assert np.array_equal(png_face(half), expected_face(bundle_v1, 5, 0.5))
        assert not np.array_equal(png_face(half), face)
        zero = [png_face(client.get("/generate", params={"seed": s, "truncation": 0, "format": "png"})) for s in (1, 2)]
        assert np.array_equal(zero[0], zero[1])

        # Sizes: resized, JPEG by default.
        jpeg = client.get("/generate", params={"seed": 5, "size": 64})
        assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
        assert decode_image(jpeg.content).shape == (64, 64, 3)
        # The same JPEG as an unmarked encode (too small for a watermark), plus its C2PA manifest.
        unmarked = encode_face(expected_face(bundle_v1, 5), size=64, fmt="jpeg", jpeg_quality=90)
        assert np.array_equal(decode_image(jpeg.content), decode_image(unmarked)) and len(jpeg.content) > len(unmarked)

        # A batch gives each seed's face, whatever else is in the batch; headers list the seeds.
        batch = client.post("/generate", json={"seeds": [6, 5, 6], "format": "png", "size": 16})
        assert batch.status_code == 200, batch.text
        body = batch.json()
        assert body["model_version"] == "1" and batch.headers["x-facegen-model-version"] == "1"
        assert batch.headers["x-facegen-seeds"] == "6,5,6"
        faces = [decode_image(base64.b64decode(image["data_base64"])) for image in body["images"]]
        assert [image["seed"] for image in body["images"]] == [6, 5, 6]
        assert np.array_equal(faces[1], face) and np.array_equal(faces[0], faces[2])
        # Attributes are for conditional generators: well-formed ones the served version cannot honour conflict.
        conflict = client.post("/generate", json={"seeds": [1], "attributes": {"gender": "female"}})
        assert conflict.status_code == 409
        assert (
            conflict.json()["detail"] == "model version 1 (dcgan) cannot condition on ['gender']: it is unconditional"
        )
        one_conflict = client.get("/generate", params={"seed": 1, "gender": "female", "age_bin": "70+"})
        assert one_conflict.status_code == 409
        assert one_conflict.json()["detail"] == (
            "model version 1 (dcgan) cannot condition on ['age_bin', 'gender']: it is unconditional"
        )
        counted = client.post("/generate", json={"count": 3}).json()
        assert len(counted["images"]) == 3 and all(image["media_type"] == "image/jpeg" for image in counted["images"])


def test_truncation_is_the_generators_own(tiny_generators) -> None:
    generator = load_generator_bundle(tiny_generators.bundles[0])
    z = seeded_latents(1, generator.latent_dim, 3)
    with torch.inference_mode():
        by_hand = to_uint8(generator(0.25 * z))[0].transpose(1, 2, 0)  # DCGAN: psi · z toward the mean latent 0
    assert np.array_equal(render_faces(generator, [3], truncation=0.25)[0], by_hand)
    with pytest.raises(ValueError, match="psi"):
        render_faces(generator, [1], truncation=1.5)


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"size": 100}, "query.size", "size must be one of 16, 32, 64"),
        ({"size": 4096}, "query.size", "size must be one of"),
        ({"truncation": 1.5}, "query.truncation", "less than or equal to 1"),
        ({"truncation": -0.1}, "query.truncation", "greater than or equal to 0"),
        ({"truncation": "nan"}, "query.truncation", "finite"),
        ({"seed": -1}, "query.seed", "greater than or equal to 0"),
        ({"seed": 2**60}, "query.seed", "less than or equal to"),
        ({"seed": "abc"}, "query.seed", "valid integer"),
        ({"format": "gif"}, "query.format", "'jpeg' or 'png'"),
        ({"gender": "robot"}, "query.gender", "Input should be 'female' or 'male'"),
        (
            {"age_bin": "70 "},
            "query.age_bin",
            "Input should be '0-2', '3-9', '10-19', '20-29', '30-39', '40-49', '50-59', '60-69' or '70+'",
        ),  # an unencoded 70+ arrives as "70 "
        ({"ethnicity": "white"}, "query.ethnicity", "Input should be 'White', 'Black', 'Asian', 'Indian' or 'Others'"),
    ],
)
def test_bad_query_parameters_get_422_with_a_clear_message(
    mlflow_server: str, shared_model: str, tmp_path: Path, params: dict, field: str, text: str
) -> None:
    with client_for(serve_settings(mlflow_server, shared_model, tmp_path)) as client:
        response = client.get("/generate", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["message"].startswith(field) and text in body["message"], body
    assert body["detail"][0]["loc"] == field.split(".")


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"seeds": list(range(9))}, "seeds: List should have at most 8 items"),
        ({"count": 9}, "count: Input should be less than or equal to 8"),
        ({"seeds": []}, "seeds: List should have at least 1 item"),
        ({"seeds": [1], "count": 1}, "give either seeds or count, not both"),
        ({"seeds": [1], "size": 48}, "size: Value error, size must be one of 16, 32, 64"),
        ({"seeds": [1], "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"seeds": [1], "attributes": {"gender": "robot"}}, "attributes.gender: Input should be 'female' or 'male'"),
    ],
)
def test_bad_batches_get_422_and_batches_are_bounded(
    mlflow_server: str, shared_model: str, tmp_path: Path, payload: dict, text: str
) -> None:
    with client_for(serve_settings(mlflow_server, shared_model, tmp_path)) as client:
        response = client.post("/generate", json=payload)
    assert response.status_code == 422, response.text
    assert text in response.json()["message"], response.json()


# --- readiness, admin, reload ------------------------------------------------------------------------------------


def test_not_ready_without_champion_then_reload_after_approval(
    mlflow_server: str, tiny_generators, tmp_path: Path, admin_token: str
) -> None:
    name = register_model(mlflow_server, tiny_generators, champion=None)
    with client_for(serve_settings(mlflow_server, name, tmp_path)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        assert "cannot resolve" in ready.json()["reason"]
        not_ready = client.get("/generate", params={"seed": 1})
        assert not_ready.status_code == 503 and "no model loaded" in not_ready.json()["detail"]

        move_champion(mlflow_server, name, "2")
        reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reload.status_code == 200 and reload.json()["changed"] is True
        assert reload.json()["previous_version"] is None and reload.json()["model_version"] == "2"
        assert client.get("/readyz").json() == {
            "status": "ready",
            "model_name": name,
            "alias": "champion",
            "model_version": "2",
            "reason": None,
            "refused": None,
        }
        response = client.get("/generate", params={"seed": 9, "format": "png"})
        assert response.headers["x-facegen-model-version"] == "2"
        assert np.array_equal(png_face(response), expected_face(tiny_generators.bundles[1], 9))


# --- the gate interlock: a champion whose gates failed is never served -------------------------------------------

REFUSED = "gate_status is 'failed' and no forced approval (approved_by and approval_forced_reason not set)"


def refusal_logs(caplog: pytest.LogCaptureFixture, version: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if f"points to version {version}, refused as champion" in r.getMessage()
    ]


def test_a_failed_champion_at_start_up_serves_no_face_and_says_why(
    mlflow_server: str, tiny_generators, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = register_model(mlflow_server, tiny_generators, champion=None, failed=("2",))
    MlflowClient(tracking_uri=mlflow_server).set_registered_model_alias(name, "champion", "2")  # as in the UI
    with (
        caplog.at_level(logging.INFO, logger="facegen.serve.model"),
        client_for(serve_settings(mlflow_server, name, tmp_path)) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 503
        why = f"no model loaded yet for {name}@champion: version 2 refused: {REFUSED}"
        assert ready.json() == {
            "status": "not ready",
            "model_name": name,
            "alias": "champion",
            "model_version": None,
            "reason": why,
            "refused": {"version": "2", "reason": REFUSED},
        }
        for response in (client.get("/generate", params={"seed": 1}), client.post("/generate", json={"seeds": [1]})):
            assert response.status_code == 503 and response.json() == {"detail": why}
        metrics = client.get("/metrics").text
        assert f'facegen_champion_refused{{reason="{REFUSED}",version="2"}} 1.0' in metrics
        assert "facegen_champion_refusals_total 1.0" in metrics and "facegen_model_ready 0.0" in metrics
    assert refusal_logs(caplog, "2") == [
        f"{name}@champion points to version 2, refused as champion: {REFUSED}; serving nothing until an acceptable "
        "champion"
    ]


def test_a_champion_moved_to_a_failed_version_keeps_the_previous_one_serving_until_approval_is_forced(
    mlflow_server: str, tiny_generators, tmp_path: Path, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = register_model(mlflow_server, tiny_generators, champion="1", failed=("2",))
    registry = MlflowClient(tracking_uri=mlflow_server)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        caplog.at_level(logging.INFO, logger="facegen.serve.model"),
        client_for(serve_settings(mlflow_server, name, tmp_path)) as client,
    ):
        registry.set_registered_model_alias(name, "champion", "2")  # a person moves it in the UI, past the gate
        for _ in range(3):  # every poll sees the refused version; it is logged and counted once
            reload = client.post("/admin/reload", headers=auth)
            assert reload.status_code == 502 and reload.json()["model_version"] == "1"
            assert reload.json()["error"] == f"{name}@champion points to version 2, refused as champion: {REFUSED}"
        served = client.get("/generate", params={"seed": 4, "format": "png"})
        assert served.headers["x-facegen-model-version"] == "1"
        assert np.array_equal(png_face(served), expected_face(tiny_generators.bundles[0], 4))
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {
            "status": "ready",
            "model_name": name,
            "alias": "champion",
            "model_version": "1",
            "reason": None,
            "refused": {"version": "2", "reason": REFUSED},
        }
        metrics = client.get("/metrics").text
        assert f'facegen_champion_refused{{reason="{REFUSED}",version="2"}} 1.0' in metrics
        assert "facegen_champion_refusals_total 1.0" in metrics and "facegen_model_version 1.0" in metrics
        assert refusal_logs(caplog, "2") == [
            f"{name}@champion points to version 2, refused as champion: {REFUSED}; still serving version 1"
        ]

        # Back on the served version the refusal is over; moved to version 2 again, it is refused (and logged) again.
        registry.set_registered_model_alias(name, "champion", "1")
        assert client.post("/admin/reload", headers=auth).json()["error"] is None
        assert client.get("/readyz").json()["refused"] is None
        assert 'facegen_champion_refused{reason="",version=""} 0.0' in client.get("/metrics").text
        registry.set_registered_model_alias(name, "champion", "2")
        assert client.post("/admin/reload", headers=auth).status_code == 502
        assert "facegen_champion_refusals_total 2.0" in client.get("/metrics").text
        assert len(refusal_logs(caplog, "2")) == 2

        # A person overrides the gate on the version itself (who and why, as `approve --force --reason` writes or by
        # hand in the UI): the next look swaps it in.
        registry.set_model_version_tag(name, "2", "approved_by", "ada")
        registry.set_model_version_tag(name, "2", "approval_forced_reason", "raters prefer it")
        reload = client.post("/admin/reload", headers=auth)
        assert reload.status_code == 200 and reload.json()["changed"] is True and reload.json()["model_version"] == "2"
        assert client.get("/readyz").json()["refused"] is None
        accepted = "accepted as champion: gate_status is 'failed', approval forced by ada: raters prefer it"
        assert any(accepted in record.getMessage() for record in caplog.records)  # the log says on what grounds
        forced = client.get("/generate", params={"seed": 4, "format": "png"})
        assert forced.headers["x-facegen-model-version"] == "2"
        assert np.array_equal(png_face(forced), expected_face(tiny_generators.bundles[1], 4))
        metrics = client.get("/metrics").text
        assert (
            'facegen_champion_refused{reason="",version=""} 0.0' in metrics and "facegen_model_version 2.0" in metrics
        )


def test_conditional_versions_honour_requested_attributes(mlflow_server: str, tmp_path: Path) -> None:
    config = {"resolution": RESOLUTION, "width": 8, "conditioning": ["gender"]}
    torch.manual_seed(3)
    bundle = save_generator_bundle(tmp_path / "conditional", "dcgan", config, build_generator("dcgan", config))
    name = register_champion(mlflow_server, bundle, prefix="conditional")
    female, male, unspecified = (0,), (1,), (-1,)  # label rows: index in GENDERS, −1 = any

    with client_for(serve_settings(mlflow_server, name, tmp_path)) as client:
        response = client.post("/generate", json={"seeds": [4, 5], "format": "png", "attributes": {"gender": "female"}})
        assert response.status_code == 200, response.text
        assert response.headers["x-facegen-attributes"] == "gender=female"
        faces = [decode_image(base64.b64decode(image["data_base64"])) for image in response.json()["images"]]
        assert np.array_equal(faces[0], expected_face(bundle, 4, labels=female))
        assert np.array_equal(faces[1], expected_face(bundle, 5, labels=female))
        as_male = client.post("/generate", json={"seeds": [4], "format": "png", "attributes": {"gender": "male"}})
        male_face = decode_image(base64.b64decode(as_male.json()["images"][0]["data_base64"]))
        assert np.array_equal(male_face, expected_face(bundle, 4, labels=male)) and not np.array_equal(
            male_face, faces[0]
        )
        # GET takes the same attributes as query parameters; without any a conditional version draws "any gender".
        one = client.get("/generate", params={"seed": 4, "format": "png", "gender": "female"})
        assert one.headers["x-facegen-attributes"] == "gender=female"
        assert np.array_equal(png_face(one), faces[0])
        anyone = client.get("/generate", params={"seed": 4, "format": "png"})
        assert "x-facegen-attributes" not in anyone.headers
        assert np.array_equal(png_face(anyone), expected_face(bundle, 4, labels=unspecified))
        refused_one = client.get("/generate", params={"seed": 4, "ethnicity": "Asian"})
        assert refused_one.status_code == 409 and "it is conditioned on ['gender'] only" in refused_one.json()["detail"]
        refused = client.post("/generate", json={"seeds": [4], "attributes": {"age_bin": "20-29"}})
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "model version 1 (dcgan) cannot condition on ['age_bin']: it is conditioned on ['gender'] only"
        )
        rated = client.post(
            "/feedback", json={"model_version": "1", "seed": 4, "rating": 5, "attributes": {"gender": "female"}}
        )
        assert rated.status_code == 201 and rated.json()["attributes"] == {"gender": "female"}

    result = export_feedback(
        tmp_path / "feedback.db",
        tmp_path / "out",
        min_rating=4,
        tracking_uri=mlflow_server,
        provenance=marking_config(),
        model_name=name,
    )
    assert len(result.written) == 1 and result.written[0].name.startswith("feedback_v1_s4_a")
    assert np.array_equal(decode_image(result.written[0].read_bytes()), expected_face(bundle, 4, labels=female))
    assert pd.read_csv(result.csv_path)["attributes"].tolist() == ['{"gender": "female"}']


def test_admin_endpoints_refuse_requests_without_the_token(
    mlflow_server: str, shared_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACEGEN_TEST_ADMIN_TOKEN", raising=False)
    with client_for(serve_settings(mlflow_server, shared_model, tmp_path)) as client:
        disabled = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert disabled.status_code == 403 and "FACEGEN_TEST_ADMIN_TOKEN is not set" in disabled.json()["detail"]
    monkeypatch.setenv("FACEGEN_TEST_ADMIN_TOKEN", TOKEN)
    with client_for(serve_settings(mlflow_server, shared_model, tmp_path)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
        ):
            refused = client.post("/admin/reload", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
        allowed = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200 and allowed.json()["changed"] is False
        assert allowed.json()["model_version"] == "1"


def test_a_version_that_fails_to_load_never_replaces_the_served_one(
    mlflow_server: str, tiny_generators, tmp_path: Path, admin_token: str
) -> None:
    name = register_model(mlflow_server, tiny_generators, champion="1")
    client_mlflow = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    # Version 3 is not a generator model at all: a run's text file registered by mistake.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("not a model")
    with use_tracking_uri(mlflow_server), mlflow.start_run() as run:
        mlflow.log_artifacts(str(notes), artifact_path="notes")
    broken = client_mlflow.create_model_version(name, f"runs:/{run.info.run_id}/notes", run_id=run.info.run_id)
    client_mlflow.set_model_version_tag(name, broken.version, "gate_status", "passed")  # acceptable, but no model
    with client_for(serve_settings(mlflow_server, name, tmp_path)) as client:
        client_mlflow.set_registered_model_alias(name, "champion", broken.version)  # a person's mistake in the UI
        reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reload.status_code == 502
        assert reload.json()["model_version"] == "1" and reload.json()["alias_version"] == broken.version
        assert f"loading {name} version {broken.version} failed" in reload.json()["error"]
        served = client.get("/generate", params={"seed": 1})
        assert served.status_code == 200 and served.headers["x-facegen-model-version"] == "1"
        assert client.get("/readyz").json()["model_version"] == "1"
        metrics = client.get("/metrics").text
        assert 'facegen_model_loads_total{result="failure"} 1.0' in metrics
        assert "facegen_model_load_error{message=" in metrics and f"version {broken.version} failed" in metrics
        assert "facegen_model_version 1.0" in metrics

        # Moving the alias back to the served version clears the error; moving it on swaps as usual.
        client_mlflow.set_registered_model_alias(name, "champion", "1")
        assert client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()["changed"] is False
        assert 'facegen_model_load_error{message=""} 0.0' in client.get("/metrics").text
        client_mlflow.set_registered_model_alias(name, "champion", "2")
        assert client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()["model_version"] == "2"
        assert 'facegen_model_loads_total{result="success"} 2.0' in client.get("/metrics").text


# --- metrics ----------------------------------------------------------------------------------------------------


def test_metrics_expose_latency_counts_errors_and_the_served_version(
    mlflow_server: str, shared_model: str, tmp_path: Path
) -> None:
    with client_for(serve_settings(mlflow_server, shared_model, tmp_path)) as client:
        for seed in range(3):
            assert client.get("/generate", params={"seed": seed}).status_code == 200
        assert client.get("/generate", params={"size": 7}).status_code == 422
        assert client.post("/generate", json={"seeds": [1, 2]}).status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'facegen_requests_total{endpoint="/generate",method="GET",status="200"} 3.0' in text
    assert 'facegen_requests_total{endpoint="/generate",method="POST",status="200"} 1.0' in text
    assert 'facegen_request_errors_total{endpoint="/generate",kind="client"} 1.0' in text
    assert 'facegen_request_latency_seconds_bucket{endpoint="/generate",le="0.1"}' in text
    assert 'facegen_request_latency_seconds_count{endpoint="/generate"} 5.0' in text
    assert "facegen_faces_generated_total 5.0" in text
    assert (
        f'facegen_model_info{{alias="champion",architecture="dcgan",device="cpu",model_name="{shared_model}",' in text
    )
    assert 'resolution="16",version="1"} 1.0' in text
    assert "facegen_model_version 1.0" in text and "facegen_model_ready 1.0" in text


# --- feedback ---------------------------------------------------------------------------------------------------


def test_feedback_is_stored_durably_and_survives_a_restart(
    mlflow_server: str, shared_model: str, tmp_path: Path
) -> None:
    settings = serve_settings(mlflow_server, shared_model, tmp_path)
    with client_for(settings) as client:
        first = client.post("/feedback", json={"model_version": "1", "seed": 5, "rating": 5, "comment": "sharp"})
        assert first.status_code == 201, first.text
        assert first.json()["id"] == 1 and first.json()["model_name"] == shared_model
        assert (
            client.post("/feedback", json={"model_version": "1", "seed": 6, "truncation": 0.7, "rating": 2}).status_code
            == 201
        )
        for bad, text in (
            ({"model_version": "1", "seed": 5, "rating": 6}, "rating: Input should be less than or equal to 5"),
            ({"model_version": "v1", "seed": 5, "rating": 3}, "model_version: String should match pattern"),
            ({"model_version": "1", "seed": 5, "rating": 3, "truncation": 2}, "truncation"),
            ({"model_version": "1", "rating": 3}, "seed: Field required"),
        ):
            response = client.post("/feedback", json=bad)
            assert response.status_code == 422 and text in response.json()["message"], response.json()
        assert 'facegen_feedback_total{rating="5"} 1.0' in client.get("/metrics").text
    # A new app on the same database sees the ratings and continues the sequence.
    with client_for(settings) as client:
        assert client.post("/feedback", json={"model_version": "1", "seed": 7, "rating": 4}).json()["id"] == 3
    with sqlite3.connect(settings.feedback_db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = connection.execute(
            "SELECT model_version, seed, truncation, rating, comment FROM feedback ORDER BY id"
        ).fetchall()
    assert rows == [("1", 5, 1.0, 5, "sharp"), ("1", 6, 0.7, 2, None), ("1", 7, 1.0, 4, None)]


def test_feedback_export_regenerates_well_rated_faces(mlflow_server: str, tiny_generators, tmp_path: Path) -> None:
    name = register_model(mlflow_server, tiny_generators, champion="1")
    with FeedbackStore(tmp_path / "feedback.db") as store:
        for version, seed, psi, rating in [
            ("1", 5, 1.0, 5),
            ("1", 5, 1.0, 4),  # mean 4.5: exported once
            ("2", 8, 0.5, 4),  # truncated: its own file
            ("1", 6, 1.0, 5),
            ("1", 6, 1.0, 1),  # mean 3: not exported
            ("2", 9, 1.0, 3),  # below the threshold
            ("7", 1, 1.0, 5),  # a version the registry does not have: skipped, reported
        ]:
            store.add(model_name=name, model_version=version, seed=seed, truncation=psi, rating=rating)
        store.add(model_name="another-model", model_version="1", seed=1, truncation=1.0, rating=5)
    out = tmp_path / "export"
    result = export_feedback(
        tmp_path / "feedback.db",
        out,
        min_rating=4,
        tracking_uri=mlflow_server,
        provenance=marking_config(),
        model_name=name,
    )
    assert sorted(path.name for path in result.written) == ["feedback_v1_s5.png", "feedback_v2_s8_t0.5000.png"]
    assert list(result.skipped) == ["7"]
    assert np.array_equal(
        decode_image((out / "feedback_v1_s5.png").read_bytes()), expected_face(tiny_generators.bundles[0], 5)
    )
    assert np.array_equal(
        decode_image((out / "feedback_v2_s8_t0.5000.png").read_bytes()),
        expected_face(tiny_generators.bundles[1], 8, 0.5),
    )
    table = pd.read_csv(out / "feedback.csv")
    assert list(table.columns) == [
        "file",
        "origin",
        "model_name",
        "model_version",
        "seed",
        "truncation",
        "attributes",
        "mean_rating",
        "n_ratings",
        "last_rated_at",
    ]
    assert table["origin"].eq("feedback").all() and table["file"].tolist() == [
        "feedback_v1_s5.png",
        "feedback_v2_s8_t0.5000.png",
    ]
    assert table["mean_rating"].tolist() == [4.5, 4.0] and table["n_ratings"].tolist() == [2, 1]


# --- a real `facegen serve` process: hot swap under load, kill -9 -----------------------------------------------


def test_hot_swap_under_concurrent_load_fails_no_request(mlflow_server: str, tiny_generators, tmp_path: Path) -> None:
    name = register_model(mlflow_server, tiny_generators, champion="1")
    poll_s = 1.0
    config = tmp_path / "serve.yaml"
    settings = serve_settings(mlflow_server, name, tmp_path, poll_interval_s=poll_s)
    config.write_text(
        yaml.safe_dump({**settings.model_dump(mode="json"), "allowed_sizes": list(settings.allowed_sizes)})
    )
    env = {**os.environ, "FACEGEN_HOME": str(tmp_path / "home"), "FACEGEN_TEST_ADMIN_TOKEN": TOKEN}
    env.pop("MLFLOW_TRACKING_URI", None)
    with running_facegen_serve(config, env, tmp_path / "serve.log", timeout_s=90) as (base, process):
        expected = {
            (version, seed): decode_image(
                encode_face(expected_face(bundle, seed), size=32, fmt="jpeg", jpeg_quality=90)
            )
            for version, bundle in (("1", tiny_generators.bundles[0]), ("2", tiny_generators.bundles[1]))
            for seed in range(20)
        }
        stop = threading.Event()
        results: list[list[tuple[float, int, str | None, bool]]] = [[] for _ in range(6)]

        def load(worker: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                n = 0
                while not stop.is_set():
                    seed = (worker * 7 + n) % 20
                    n += 1
                    try:
                        response = http.get("/generate", params={"seed": seed, "size": 32})
                    except httpx.HTTPError:
                        results[worker].append((time.monotonic(), -1, None, False))
                        continue
                    version = response.headers.get("x-facegen-model-version")
                    correct = response.status_code == 200 and np.array_equal(
                        decode_image(response.content), expected.get((version, seed))
                    )
                    results[worker].append((time.monotonic(), response.status_code, version, correct))

        threads = [threading.Thread(target=load, args=(i,)) for i in range(len(results))]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        moved_at = time.monotonic()
        move_champion(mlflow_server, name, "2")
        while time.monotonic() - moved_at < 10 and not any(r and r[-1][2] == "2" for r in results):
            time.sleep(0.05)
        time.sleep(1.0)  # keep loading the new version a little
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

        everything = [row for rows in results for row in rows]
        assert len(everything) > 50
        failures = [row for row in everything if row[1] != 200 or not row[3]]
        assert not failures, f"{len(failures)} failed or wrong responses, e.g. {failures[:3]}"
        first_v2 = min(at for at, _, version, _ in everything if version == "2")
        # Within the poll interval plus the new version's download + warm-up (slack for a busy CI machine).
        assert first_v2 - moved_at <= poll_s + 3.0, f"version 2 seen {first_v2 - moved_at:.2f} s after the move"
        for rows in results:  # per client: version 1 until the swap, version 2 after it, never back
            versions = [version for _, _, version, _ in rows]
            assert versions == sorted(versions), versions
        assert any(version == "1" for _, _, version, _ in everything)

        # Feedback is on disk when the response arrives: it survives kill -9 of the service.
        stored = httpx.post(f"{base}/feedback", json={"model_version": "2", "seed": 3, "rating": 5}, timeout=10)
        assert stored.status_code == 201
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        with FeedbackStore(settings.feedback_db) as store:
            assert [(r.model_version, r.seed, r.rating) for r in store.records()] == [("2", 3, 5)]


def test_settings_read_yaml_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("poll_interval_s: 5\nallowed_sizes: [64, 256]\ndefault_size: 64\n")
    settings = load_settings(config, environ={"FACEGEN_SERVE_POLL_INTERVAL_S": "2.5", "FACEGEN_SERVE_MAX_BATCH": "4"})
    assert settings.poll_interval_s == 2.5 and settings.max_batch == 4 and settings.allowed_sizes == (64, 256)
    assert settings.admin_token_env == "FACEGEN_ADMIN_TOKEN"
    with pytest.raises(ValueError, match="default_size 256 is not one of allowed_sizes"):
        load_settings(None, environ={}, allowed_sizes=(64,))
    with pytest.raises(ValueError, match="FACEGEN_SERVE_NOPE does not name a setting"):
        load_settings(None, environ={"FACEGEN_SERVE_NOPE": "1"})
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.yaml", environ={})
    assert math.isclose(load_settings(None, environ={}).poll_interval_s, 10.0)


def test_the_holder_keeps_its_model_while_the_registry_is_down(tiny_generators) -> None:
    holder = ModelHolder(tracking_uri="http://127.0.0.1:9", model_name="m", alias="champion", warmup=True)
    from facegen.models.bundle import load_generator_bundle
    from facegen.serve.loading import LoadedModel

    def loader(version: str) -> LoadedModel:
        generator = load_generator_bundle(tiny_generators.bundles[int(version) - 1])
        return LoadedModel("m", version, generator, "dcgan", {}, holder.device)

    versions = iter(AliasTarget(version, {"gate_status": "passed"}) for version in ["1", "1", "2"])
    holder._loader, holder._resolver = loader, lambda: next(versions)
    assert holder.refresh().changed and holder.current.version == "1"
    grabbed = holder.current
    assert not holder.refresh().changed
    assert holder.refresh().current_version == "2" and holder.current.version == "2"
    assert grabbed.version == "1" and grabbed.generator is not holder.current.generator  # the old object is intact

    def down() -> str:
        raise ConnectionError("registry unreachable")

    holder._resolver = down
    result = holder.refresh()
    assert result.error and "registry unreachable" in result.error and holder.current.version == "2"
    assert holder.stats.resolve_failures == 1 and holder.stats.load_successes == 2
