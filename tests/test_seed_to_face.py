"""The specification of "a seed is one face": (model, seed, labels, truncation) name the same pixels on every path.

For a small conditional DCGAN and a small conditional StyleGAN (random weights, all three attributes), one face
drawn alone is IDENTICAL, pixel for pixel, whether it comes from

- :func:`facegen.models.sampling.faces_from_seeds` (the one seed→face function, the reference here),
- :func:`facegen.metrics.samples.evaluation_faces` (the seed and labels of face i re-drawn),
- the pyfunc model logged and loaded with MLflow (input columns ``seed``, ``truncation``, attribute names),
- the service's ``GET /generate`` (PNG at the model's resolution, attributes as query parameters),
- the feedback export's re-generation (``render_faces``) of a rated face.

Across batch sizes (a face alone vs inside a batch of ``BATCH`` faces) float32 kernels may block their sums
differently, so a value that lands next to a uint8 rounding boundary can round the other way: the bound is
``MAX_BATCH_DELTA`` and ``MIN_IDENTICAL_SHARE`` below.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.metrics.samples import evaluation_faces
from facegen.models.bundle import save_generator_bundle
from facegen.models.conditioning import UNKNOWN, label_vocabulary
from facegen.models.registry import build_generator
from facegen.models.sampling import base_seeds, faces_from_seeds
from facegen.serve.app import create_app
from facegen.serve.feedback_export import export_feedback, face_file_name
from facegen.serve.imaging import decode_image
from facegen.serve.inference import render_faces
from tests.mlflow_server import use_tracking_uri
from tests.serve_fixtures import register_champion, serve_settings

#: Across batch sizes at most one uint8 level apart. Measured on the 2-core CPU (torch 2.14.1, 2 threads), 64-face
#: batches vs one face at a time, three random inits, psi 1 and 0.7: DCGAN 0 levels (bit-identical), StyleGAN
#: (modulated convs, 16 and 64 channels) max 1 level.
MAX_BATCH_DELTA = 1
#: Share of uint8 values identical across batch sizes: measured ≥ 0.99995 per 64-face batch (StyleGAN; DCGAN 1.0).
#: A flip needs a value within float32 rounding (~1e-6) of a boundary 1/127.5 wide, so 0.999 leaves 20× headroom.
MIN_IDENTICAL_SHARE = 0.999
BATCH = 64
TRUNCATIONS = (1.0, 0.7)
ATTRIBUTES = list(ATTRIBUTE_VALUES)
#: Everything on the single cell (male, 70+, Asian): an evaluation sample of one face asks exactly for it.
ONE_CELL = {"gender": {"male": 1.0}, "age_bin": {"70+": 1.0}, "ethnicity": {"Asian": 1.0}}
MODELS = {
    "dcgan": {"resolution": 16, "latent_dim": 16, "width": 8},
    "stylegan": {
        "resolution": 32,
        "latent_dim": 16,
        "w_dim": 16,
        "mapping_layers": 2,
        "channel_base": 128,
        "channel_max": 16,
    },
}


@dataclass(frozen=True)
class Case:
    """One face: a seed, its label row (``label_dims`` order, −1 = unspecified) and psi."""

    seed: int
    labels: tuple[int, ...]
    truncation: float


@dataclass(frozen=True)
class Champion:
    """A small conditional generator, its bundle registered as the champion of a fresh model, and the pyfunc."""

    generator: torch.nn.Module
    model_name: str
    pyfunc: mlflow.pyfunc.PyFuncModel

    @property
    def resolution(self) -> int:
        return int(self.generator.resolution)


def conditional_generator(architecture: str) -> torch.nn.Module:
    torch.manual_seed(0)
    generator = build_generator(architecture, {**MODELS[architecture], "conditioning": ATTRIBUTES})
    if architecture == "stylegan":
        generator(torch.randn(32, generator.latent_dim), torch.zeros(32, 3, dtype=torch.long))  # w_avg, as training
        for name, parameter in generator.named_parameters():
            if name.endswith("noise_strength"):
                parameter.data.fill_(0.3)  # visible noise, so determinism is not trivially true
    return generator.eval()


@pytest.fixture(scope="module", params=list(MODELS))
def champion(request: pytest.FixtureRequest, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    architecture = request.param
    generator = conditional_generator(architecture)
    config = {**MODELS[architecture], "conditioning": ATTRIBUTES}
    bundle = save_generator_bundle(tmp_path_factory.mktemp(architecture), architecture, config, generator)
    name = register_champion(mlflow_server, bundle, prefix=f"seed-to-face-{architecture}")
    with use_tracking_uri(mlflow_server):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    return Champion(generator, name, pyfunc)


def attributes_of(generator: torch.nn.Module, labels: tuple[int, ...]) -> dict[str, str]:
    """A label row as the attribute names a request carries (unspecified ones left out)."""
    vocabulary = label_vocabulary(generator.label_dims)
    return {name: vocabulary[name][index] for name, index in zip(vocabulary, labels, strict=True) if index != UNKNOWN}


def reference_face(generator: torch.nn.Module, case: Case) -> np.ndarray:
    """The face of ``case`` drawn alone by faces_from_seeds, channels last (H×W×3) like images."""
    face = faces_from_seeds(generator, [case.seed], labels=case.labels, truncation_psi=case.truncation)[0]
    return face.transpose(1, 2, 0)


def pyfunc_frame(generator: torch.nn.Module, cases: list[Case]) -> pd.DataFrame:
    """The pyfunc's input for ``cases``: every conditioned attribute column, None where unspecified."""
    requested = [attributes_of(generator, case.labels) for case in cases]
    return pd.DataFrame(
        {
            "seed": np.array([case.seed for case in cases], dtype=np.int64),
            "truncation": [case.truncation for case in cases],
            **{name: [attributes.get(name) for attributes in requested] for name in generator.label_dims},
        }
    )


def assert_within_batch_tolerance(batched: np.ndarray, alone: np.ndarray) -> None:
    assert batched.shape == alone.shape and batched.dtype == alone.dtype == np.uint8
    delta = np.abs(batched.astype(int) - alone.astype(int))
    assert delta.max() <= MAX_BATCH_DELTA, f"max |Δ| = {delta.max()} uint8 levels"
    assert (delta == 0).mean() >= MIN_IDENTICAL_SHARE, f"identical share {(delta == 0).mean():.5f}"


def cases_for(generator: torch.nn.Module) -> list[Case]:
    """The faces every path must agree on: one from a one-face evaluation sample (male, 70+, Asian), one truncated
    with some attributes unspecified, one with none specified."""
    sample = evaluation_faces(generator, 1, seed=41, targets=ONE_CELL)
    assert sample.labels is not None and sample.labels[0].tolist() == [1, 8, 2]
    evaluated = Case(sample.seeds[0], tuple(sample.labels[0].tolist()), 1.0)
    assert np.array_equal(sample.faces[0].transpose(1, 2, 0), reference_face(generator, evaluated))
    return [evaluated, Case(7, (0, UNKNOWN, 4), 0.7), Case(2**40 + 3, (UNKNOWN,) * 3, 0.5)]


def test_one_seed_is_one_face_on_every_path(champion: Champion, mlflow_server: str, tmp_path: Path) -> None:
    generator, resolution = champion.generator, champion.resolution
    cases = cases_for(generator)
    expected = [reference_face(generator, case) for case in cases]

    for case, face in zip(cases, expected, strict=True):
        # The registered pyfunc, one row per request (one face per forward pass, like the reference).
        assert np.array_equal(champion.pyfunc.predict(pyfunc_frame(generator, [case]))[0], face)
        # render_faces, the service's and the feedback export's view of faces_from_seeds.
        assert np.array_equal(
            render_faces(generator, [case.seed], truncation=case.truncation, labels=case.labels)[0], face
        )

    settings = serve_settings(mlflow_server, champion.model_name, tmp_path)
    with TestClient(create_app(settings)) as client:
        for case, face in zip(cases, expected, strict=True):
            attributes = attributes_of(generator, case.labels)
            params = {"seed": case.seed, "truncation": case.truncation, "format": "png", "size": resolution}
            response = client.get("/generate", params={**params, **attributes})
            assert response.status_code == 200, response.text
            assert np.array_equal(decode_image(response.content), face)
            assert response.headers.get("x-facegen-attributes", "") == ",".join(
                f"{name}={value}" for name, value in sorted(attributes.items())
            )
            rated = client.post(
                "/feedback",
                json={
                    "model_version": "1",
                    "seed": case.seed,
                    "truncation": case.truncation,
                    "attributes": attributes or None,
                    "rating": 5,
                },
            )
            assert rated.status_code == 201, rated.text
        # 70+ travels URL-encoded, exactly as the docs' curl example writes it.
        first = cases[0]
        encoded = client.get(
            f"/generate?seed={first.seed}&gender=male&age_bin=70%2B&ethnicity=Asian&format=png&size={resolution}"
        )
        assert np.array_equal(decode_image(encoded.content), expected[0])

    export = export_feedback(
        settings.resolved_feedback_db(),
        tmp_path / "export",
        min_rating=4,
        tracking_uri=mlflow_server,
        provenance=settings.provenance,
        model_name=champion.model_name,
    )
    assert len(export.written) == len(cases)
    for case, face in zip(cases, expected, strict=True):
        name = face_file_name("1", case.seed, case.truncation, attributes_of(generator, case.labels))
        assert np.array_equal(decode_image((export.out_dir / name).read_bytes()), face)


def test_a_face_does_not_depend_on_its_batch(champion: Champion, mlflow_server: str, tmp_path: Path) -> None:
    generator = champion.generator
    sample = evaluation_faces(generator, BATCH, seed=1000, targets={})
    assert sample.labels is not None
    alone = np.stack(
        [faces_from_seeds(generator, [seed], labels=labels)[0] for seed, labels in zip(sample.seeds, sample.labels)]
    )
    assert_within_batch_tolerance(sample.faces, alone)

    # The pyfunc groups a mixed request by (psi, labels) into forward passes; each face matches its seed alone.
    cases = [
        Case(seed, tuple(labels.tolist()), TRUNCATIONS[index % len(TRUNCATIONS)])
        for index, (seed, labels) in enumerate(zip(sample.seeds, sample.labels, strict=True))
    ]
    predicted = champion.pyfunc.predict(pyfunc_frame(generator, cases))
    assert_within_batch_tolerance(predicted, np.stack([reference_face(generator, case) for case in cases]))

    # The service renders one request of BATCH faces in one forward pass; each face matches its seed alone.
    seeds, female_70 = base_seeds(5000, BATCH), (0, 8, UNKNOWN)
    settings = serve_settings(mlflow_server, champion.model_name, tmp_path, max_batch=BATCH, max_forward_batch=BATCH)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/generate",
            json={
                "seeds": seeds,
                "format": "png",
                "size": champion.resolution,
                "attributes": {"gender": "female", "age_bin": "70+"},
            },
        )
    assert response.status_code == 200, response.text
    served = np.stack([decode_image(base64.b64decode(image["data_base64"])) for image in response.json()["images"]])
    alone = np.stack([reference_face(generator, Case(seed, female_70, 1.0)) for seed in seeds])
    assert_within_batch_tolerance(served, alone)
