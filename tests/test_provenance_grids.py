"""Grids of faces the pipeline saves as MLflow run artifacts are signed PNGs: a grid of generated faces reads as
trainedAlgorithmicMedia from the run's generator with the seeds it shows, a grid with real photos in it as a
composite; without credentials nothing is logged, and with marking switched off the grid is logged plain."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from torchvision.utils import make_grid

from facegen.metrics.attribute_grid import attribute_grid
from facegen.metrics.memorisation import closest_pairs_grid, closest_samples
from facegen.models.registry import build_generator
from facegen.models.sampling import base_seeds, faces_from_seeds
from facegen.provenance.c2pa_manifest import (
    COMPOSITE_SOURCE_TYPE,
    DIGITAL_SOURCE_TYPE,
    GridProvenance,
    shown_seeds,
)
from facegen.provenance.credentials import TRUST_ANCHOR_FILE, ProvenanceConfig
from facegen.provenance.marking import FaceMarker, MarkingUnavailable, log_marked_grid
from facegen.provenance.verify import FileReport, format_report, verify_files
from facegen.registry.names import GENERATOR_MODEL_NAME
from facegen.train.mlflow_monitor import MlflowTrainingMonitor
from tests.provenance_fixtures import marking_config, signing_credentials

SEEDS = base_seeds(1_000_003, 64)


@pytest.fixture(scope="module")
def generated() -> np.ndarray:
    """64 faces of a small untrained generator at 16², from seeds 1_000_003 … (as evaluate draws them)."""
    torch.manual_seed(0)
    return faces_from_seeds(build_generator("dcgan", {"resolution": 16, "width": 8}), SEEDS)


def logged(client: mlflow.MlflowClient, run_id: str, artifact_file: str, tmp_path: Path) -> FileReport:
    """The artifact as the run stores it, verified against the test CA."""
    assert artifact_file in {item.path for item in client.list_artifacts(run_id, str(Path(artifact_file).parent))}
    local = Path(client.download_artifacts(run_id, artifact_file, str(tmp_path)))
    [report] = verify_files([local], signing_credentials() / TRUST_ANCHOR_FILE)
    return report


def test_a_grid_of_generated_faces_is_signed_by_the_run_and_names_the_seeds(generated, mlflow_tracking, tmp_path):
    grid = make_grid(torch.from_numpy(generated), nrow=8, padding=1).permute(1, 2, 0).numpy()
    with mlflow.start_run() as run:
        made_by = GridProvenance(GENERATOR_MODEL_NAME, run.info.run_id, shown_seeds(SEEDS))
        log_marked_grid(grid, "samples/evaluation_grid.png", made_by, FaceMarker(marking_config()))

    report = logged(mlflow_tracking, run.info.run_id, "samples/evaluation_grid.png", tmp_path)
    assert (report.media_type, report.size) == ("image/png", (grid.shape[1], grid.shape[0]))
    manifest = report.manifest
    assert (manifest.state, manifest.trusted, manifest.failures) == ("valid", True, [])
    assert manifest.digital_source_type == DIGITAL_SOURCE_TYPE
    assert (manifest.generator, manifest.generator_version) == (GENERATOR_MODEL_NAME, None)
    # 64 consecutive seeds go in as a range, keeping the manifest lean.
    assert manifest.parameters == {"first_seed": 1_000_003, "seed_count": 64, "model_run_id": run.info.run_id}
    assert not report.watermark.found  # grids carry the manifest only
    text = format_report(report)
    assert "C2PA manifest: VALID, trusted signer: facegen test signer (facegen)" in text
    assert f"generator: {GENERATOR_MODEL_NAME} not registered yet" in text and "first_seed: 1000003" in text


def test_closest_pairs_with_real_photos_say_composite_and_list_the_seeds_shown(
    generated, real_faces_32, mlflow_tracking, tmp_path
):
    real = real_faces_32[:, :, ::2, ::2].copy()  # 16², the generator's resolution
    rng = np.random.default_rng(0)
    report = {"nn_index": rng.integers(0, len(real), len(generated)), "nn_distance": rng.random(len(generated))}
    shown = [SEEDS[i] for i in closest_samples(report, 4)]
    with mlflow.start_run() as run:
        made_by = GridProvenance(GENERATOR_MODEL_NAME, run.info.run_id, shown_seeds(shown), with_real=True)
        pairs = closest_pairs_grid(generated, real, report, k=4)
        log_marked_grid(pairs, "memorisation/closest_pairs.png", made_by, FaceMarker(marking_config()))

    manifest = logged(mlflow_tracking, run.info.run_id, "memorisation/closest_pairs.png", tmp_path).manifest
    assert (manifest.state, manifest.trusted) == ("valid", True)
    assert manifest.digital_source_type == COMPOSITE_SOURCE_TYPE
    assert manifest.parameters == {"seeds": ", ".join(map(str, shown)), "model_run_id": run.info.run_id}
    assert shown == [SEEDS[i] for i in np.argsort(report["nn_distance"])[:4]]


def test_each_training_epoch_grid_names_the_training_seed_and_epoch(generated, mlflow_tracking, tmp_path):
    monitor = MlflowTrainingMonitor(FaceMarker(marking_config()), training_seed=7)
    with mlflow.start_run() as run:
        monitor.on_epoch_end(3, 120, generated[0].transpose(1, 2, 0).copy())

    manifest = logged(mlflow_tracking, run.info.run_id, "samples/epoch_003.png", tmp_path).manifest
    assert (manifest.state, manifest.trusted, manifest.digital_source_type) == ("valid", True, DIGITAL_SOURCE_TYPE)
    assert manifest.parameters == {"training_seed": 7, "epoch": 3, "step": 120, "model_run_id": run.info.run_id}


def test_without_credentials_nothing_is_logged_and_with_marking_off_the_grid_is_plain(
    generated, mlflow_tracking, tmp_path
):
    grid = generated[0].transpose(1, 2, 0).copy()
    with mlflow.start_run() as run:
        made_by = GridProvenance(GENERATOR_MODEL_NAME, run.info.run_id, shown_seeds(SEEDS[:1]))
        missing = FaceMarker(ProvenanceConfig(credentials_dir=tmp_path / "nothing"))
        with pytest.raises(MarkingUnavailable, match="facegen provenance init"):
            missing.check()
        with pytest.raises(MarkingUnavailable, match="signing credentials missing"):
            log_marked_grid(grid, "samples/unsigned.png", made_by, missing)
        off = FaceMarker(ProvenanceConfig(enabled=False, credentials_dir=tmp_path / "nothing"))
        log_marked_grid(grid, "samples/plain.png", made_by, off)

    assert [item.path for item in mlflow_tracking.list_artifacts(run.info.run_id, "samples")] == ["samples/plain.png"]
    assert logged(mlflow_tracking, run.info.run_id, "samples/plain.png", tmp_path).manifest.state == "absent"


def test_a_grid_must_be_a_uint8_rgb_png(generated):
    marker = FaceMarker(marking_config())
    made_by = GridProvenance(GENERATOR_MODEL_NAME, "0" * 32, shown_seeds([1]))
    with pytest.raises(ValueError, match="must end in .png"):
        log_marked_grid(generated[0].transpose(1, 2, 0).copy(), "samples/grid.jpg", made_by, marker)
    with pytest.raises(ValueError, match="uint8 H×W×3 grid"):
        marker.encode_grid(generated[0].astype(np.float32), made_by)
    with pytest.raises(ValueError, match="at least one face"):
        shown_seeds([])


def test_the_by_attribute_grid_is_rendered_to_pixels_that_can_be_signed(tmp_path):
    torch.manual_seed(0)
    conditioning = ["age_bin", "ethnicity", "gender"]
    generator = build_generator("dcgan", {"resolution": 16, "width": 8, "conditioning": conditioning})
    grid = attribute_grid(generator, seed=5)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3

    made_by = GridProvenance(GENERATOR_MODEL_NAME, "0" * 32, {"seed": 5})
    path = tmp_path / "by_attribute.png"
    path.write_bytes(FaceMarker(marking_config()).encode_grid(grid, made_by))
    [report] = verify_files([path], signing_credentials() / TRUST_ANCHOR_FILE)
    assert (report.manifest.state, report.manifest.trusted, report.manifest.parameters["seed"]) == ("valid", True, 5)
