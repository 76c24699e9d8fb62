"""Shared fixtures: the real UTKFace zip, real faces from it, offline Inception weights converted once per session."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest_plugins = ["tests.mlflow_server", "tests.s3_server"]

REPO_ROOT = Path(__file__).resolve().parents[1]
UTKFACE_ZIP = REPO_ROOT.parent / "shared" / "data" / "utkface" / "UTKFace.zip"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")


@pytest.fixture(scope="session")
def utkface_zip() -> Path:
    if not UTKFACE_ZIP.is_file():
        pytest.fail(f"the shared face data is missing: {UTKFACE_ZIP}")
    return UTKFACE_ZIP


@pytest.fixture(scope="session")
def face_members(utkface_zip: Path) -> list[str]:
    """The first 200 well-formed UTKFace member names (sorted, so stable across runs)."""
    with zipfile.ZipFile(utkface_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg") and n.count("_") == 3)
    return names[:200]


def read_face(archive: zipfile.ZipFile, member: str, size: int | None = None) -> np.ndarray:
    """One real face as uint8 3×H×W (resized when ``size`` is given)."""
    image = Image.open(io.BytesIO(archive.read(member))).convert("RGB")
    if size:
        image = image.resize((size, size), Image.LANCZOS)
    return np.asarray(image).transpose(2, 0, 1).copy()


@pytest.fixture(scope="session")
def real_faces_32(utkface_zip: Path, face_members: list[str]) -> np.ndarray:
    """128 real faces at 32×32, uint8 N×3×32×32."""
    with zipfile.ZipFile(utkface_zip) as archive:
        return np.stack([read_face(archive, member, 32) for member in face_members[:128]])


@pytest.fixture(scope="session")
def facegen_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FACEGEN_HOME as `make setup` leaves it (once per test session): the offline FID weights converted into it
    and local signing credentials (`facegen provenance init`), so pipeline runs can mark the faces they export."""
    from facegen.metrics.inception_weights import convert_fid_helper_weights
    from facegen.provenance.credentials import write_local_credentials

    home = tmp_path_factory.mktemp("facegen_home")
    convert_fid_helper_weights(home / "weights" / "pt_inception-2015-12-05-fid.pth")
    write_local_credentials(home / "provenance")
    return home


@pytest.fixture(scope="session")
def tiny_attribute_bundle(utkface_zip: Path, face_members: list[str], tmp_path_factory) -> Path:
    """A real facegen-attributes bundle trained for four steps (see tests/attribute_fixtures.py)."""
    from tests.attribute_fixtures import train_tiny_attribute_bundle

    return train_tiny_attribute_bundle(utkface_zip, face_members, tmp_path_factory.mktemp("attribute_bundle"))


@pytest.fixture(scope="module")
def pipeline_mlflow(mlflow_server: str) -> str:
    """The MLflow server a module's ZenML stack (``zenml_env`` of tests/test_training_pipeline_e2e.py) tracks to: the
    session's, unless the module overrides it."""
    return mlflow_server
