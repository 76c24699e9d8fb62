"""The GPU suite's carrying: what prepare cuts into pieces (each small enough for one device call) comes back
byte-identical from assemble, a piece lost between calls is named with the reason, and a part's time budget
stops it without touching the next part's signal handling."""

from __future__ import annotations

import random
import signal
import time
import zipfile
from pathlib import Path

import pytest

from benchmarks.gpu_suite import (
    FACES,
    WEIGHTS,
    OutOfTime,
    assemble,
    check_pieces,
    prepare,
    read_manifest,
    run_calls,
    time_budget,
    training_values,
)

GPU_CONFIG = Path(__file__).resolve().parents[1] / "configs/gpu.yaml"


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, dict, Path]:
    noise = random.Random(0).randbytes  # incompressible, so the payload needs several pieces
    source = tmp_path / "UTKFace.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for index in range(5):
            archive.writestr(f"UTKFace/{20 + index}_0_1_2017.jpg.chip.jpg", noise(3000 + index))
        archive.writestr("UTKFace/readme.txt", "not a face")
    weights = tmp_path / "weights.pth"
    weights.write_bytes(noise(6000))
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK not really")
    carry = tmp_path / "carry"
    manifest = prepare(3, carry, source=source, weights=weights, wheels=[wheel], piece_bytes=4096)
    return carry, manifest, source


def test_pieces_fit_the_limit_and_assemble_to_the_prepared_files(prepared, tmp_path: Path) -> None:
    carry, manifest, source = prepared
    assert len(manifest["pieces"]) >= 3 and all(piece["bytes"] <= 4096 for piece in manifest["pieces"])
    assert read_manifest(carry) == manifest and check_pieces(carry, manifest) == []
    into = tmp_path / "gpu"
    assemble(carry, into)
    assert (into / WEIGHTS).read_bytes() == (tmp_path / "weights.pth").read_bytes()
    assert (into / "wheels/demo-1.0-py3-none-any.whl").read_bytes() == b"PK not really"
    with zipfile.ZipFile(into / FACES) as subset, zipfile.ZipFile(source) as original:
        assert subset.namelist() == [f"UTKFace/{20 + i}_0_1_2017.jpg.chip.jpg" for i in range(3)]  # first 3 faces
        assert all(subset.read(name) == original.read(name) for name in subset.namelist())


def test_every_call_but_the_last_only_checks_and_the_last_runs_the_suite(prepared) -> None:
    carry, manifest, _ = prepared
    calls = run_calls(manifest, carry, root=carry.parent)
    assert [call["carry"] for call in calls] == [[f"carry/p{i}"] for i in range(len(manifest["pieces"]))]
    assert {call["command"] for call in calls[:-1]} == {"bash benchmarks/gpu_suite.sh check"}
    assert calls[-1]["command"] == "bash benchmarks/gpu_suite.sh device" and calls[-1]["timeout_s"] <= 600


def test_a_piece_lost_between_calls_is_named_with_the_fix(prepared, tmp_path: Path) -> None:
    carry, manifest, _ = prepared
    (carry / "p1" / "payload.tar.gz.part").unlink()
    (carry / "p0" / "payload.tar.gz.part").write_bytes(b"damaged")
    assert check_pieces(carry, manifest) == ["p0 differs from what prepare wrote", "p1 missing"]
    with pytest.raises(SystemExit, match=r"p1 missing.*back to back"):
        assemble(carry, tmp_path / "gpu")


def test_a_time_budget_stops_a_part_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGALRM)
    started = time.perf_counter()
    with pytest.raises(OutOfTime, match="over its 0 s budget"), time_budget(0.2):
        while True:
            time.sleep(0.01)
    assert 0.15 < time.perf_counter() - started < 2.0
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_set_merges_the_model_unless_it_names_another_architecture() -> None:
    smaller = training_values(GPU_CONFIG, {"batch_size": 8, "model": {"channel_max": 16}})
    assert smaller["architecture"] == "stylegan" and smaller["batch_size"] == 8
    assert smaller["model"]["channel_max"] == 16 and smaller["model"]["w_dim"] == 512  # the rest of gpu.yaml's model
    r3gan = training_values(GPU_CONFIG, {"architecture": "r3gan", "loss": "rpgan", "model": {"latent_dim": 64}})
    assert r3gan["model"] == {"latent_dim": 64} and r3gan["precision"] == "bf16"  # StyleGAN's kwargs do not carry over
