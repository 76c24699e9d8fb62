"""Sampling: seeded, deterministic uint8 faces; truncation and labels; interpolation in z and W; style-mixing grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.models.registry import build_generator
from facegen.models.sampling import (
    base_seeds,
    faces_from_seeds,
    interpolate,
    seeded_latents,
    slerp,
    style_mix,
    to_uint8,
)
from tests.test_seed_to_face import MAX_BATCH_DELTA

STYLEGAN = {
    "resolution": 32,
    "latent_dim": 16,
    "w_dim": 16,
    "mapping_layers": 2,
    "channel_base": 128,
    "channel_max": 16,
}
DCGAN = {"resolution": 16, "latent_dim": 16, "width": 8}


@pytest.fixture(scope="module")
def stylegan() -> torch.nn.Module:
    torch.manual_seed(0)
    generator = build_generator("stylegan", {**STYLEGAN, "conditioning": ["gender", "age_bin"]})
    generator(torch.randn(32, 16), torch.zeros(32, 2, dtype=torch.long))  # give w_avg a value, as training does
    for name, parameter in generator.named_parameters():
        if name.endswith("noise_strength"):
            parameter.data.fill_(0.3)  # make the noise visible, so determinism is not trivially true
    return generator


@pytest.fixture(scope="module")
def dcgan() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator("dcgan", DCGAN)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal within the across-batch-size bound of tests/test_seed_to_face.py (batched float arithmetic may round a
    pixel the other way)."""
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= MAX_BATCH_DELTA


def test_latents_and_uint8_conversion():
    assert torch.equal(seeded_latents(3, 8, seed=5), seeded_latents(3, 8, seed=5))
    assert not torch.equal(seeded_latents(3, 8, seed=5), seeded_latents(3, 8, seed=6))
    assert to_uint8(torch.tensor([[[[-1.0, 0.0, 1.0, 7.0]]]])).tolist() == [[[[0, 128, 255, 255]]]]


def test_faces_from_seeds_is_seeded_and_restores_the_mode(dcgan, stylegan):
    dcgan.train()
    faces = faces_from_seeds(dcgan, base_seeds(1, 5))
    assert faces.dtype == np.uint8 and faces.shape == (5, 3, 16, 16)
    assert np.array_equal(faces, faces_from_seeds(dcgan, base_seeds(1, 5)))
    assert close(faces, faces_from_seeds(dcgan, base_seeds(1, 5), batch_size=2))
    assert dcgan.training
    stylegan.train()
    styled = faces_from_seeds(stylegan, base_seeds(2, 4), labels=[1, -1])
    assert np.array_equal(styled, faces_from_seeds(stylegan, base_seeds(2, 4), labels=torch.tensor([[1, -1]])))
    assert close(styled, faces_from_seeds(stylegan, base_seeds(2, 4), labels=[1, -1], batch_size=3))
    assert stylegan.training


def test_labels_per_face_or_shared(stylegan, dcgan):
    rows = np.array([[0, 3], [1, 3], [0, -1]])
    faces = faces_from_seeds(stylegan, base_seeds(4, 3), labels=rows)
    assert close(faces[1:2], faces_from_seeds(stylegan, base_seeds(4, 3), labels=[1, 3])[1:2])
    assert not np.array_equal(faces[0], faces_from_seeds(stylegan, base_seeds(4, 3), labels=[1, 3])[0])
    with pytest.raises(ValueError, match="pass labels"):
        faces_from_seeds(stylegan, base_seeds(0, 2))
    with pytest.raises(ValueError, match="integer"):
        faces_from_seeds(stylegan, base_seeds(0, 2), labels=[0.5, 1.0])
    with pytest.raises(ValueError, match="unconditional"):
        faces_from_seeds(dcgan, base_seeds(0, 2), labels=[0])


def test_truncation_psi_zero_gives_one_face(stylegan, dcgan):
    faces = faces_from_seeds(stylegan, base_seeds(7, 3), labels=[0, 2], truncation_psi=0.0)
    assert all(np.array_equal(face, faces[0]) for face in faces)
    assert not np.array_equal(faces, faces_from_seeds(stylegan, base_seeds(7, 3), labels=[0, 2]))
    mean_faces = faces_from_seeds(dcgan, base_seeds(7, 3), truncation_psi=0.0)
    assert all(np.array_equal(face, mean_faces[0]) for face in mean_faces)


def test_slerp_is_exact_at_the_ends():
    a, b = torch.randn(16), torch.randn(16)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path[2].norm(), (a.norm() + b.norm()) / 2, rtol=0.2)  # stays near the sphere


@pytest.mark.parametrize("space", ["z", "w"])
def test_interpolation_ends_are_the_seeds_faces(stylegan, space: str):
    frames = interpolate(stylegan, 11, 12, 6, space=space, labels=[1, 4])
    assert frames.shape == (6, 3, 32, 32) and frames.dtype == np.uint8
    assert close(frames[0], faces_from_seeds(stylegan, [11], labels=[1, 4])[0])
    assert close(frames[-1], faces_from_seeds(stylegan, [12], labels=[1, 4])[0])
    assert np.array_equal(frames, interpolate(stylegan, 11, 12, 6, space=space, labels=[1, 4]))


def test_dcgan_interpolates_in_z_only(dcgan):
    frames = interpolate(dcgan, 1, 2, 3)
    assert close(frames[0], faces_from_seeds(dcgan, [1])[0])
    with pytest.raises(ValueError, match="style-based"):
        interpolate(dcgan, 1, 2, 3, space="w")


def test_style_mixing_grid(stylegan, dcgan):
    rows, cols, labels = [1, 2, 3], [4, 5], [0, -1]
    grid = style_mix(stylegan, rows, cols, crossover_layer=4, labels=labels)
    assert grid.shape == (6, 3, 32, 32) and grid.dtype == np.uint8
    assert np.array_equal(grid, style_mix(stylegan, rows, cols, crossover_layer=4, labels=labels))
    row_faces = faces_from_seeds(stylegan, rows, labels=labels)
    col_faces = faces_from_seeds(stylegan, cols, labels=labels)
    all_rows = style_mix(stylegan, rows, cols, crossover_layer=stylegan.num_ws, labels=labels)
    all_cols = style_mix(stylegan, rows, cols, crossover_layer=0, labels=labels)
    assert close(all_rows, np.repeat(row_faces, 2, axis=0))  # face r·cols + c is row r's
    assert close(all_cols, np.tile(col_faces, (3, 1, 1, 1)))
    assert not close(grid, all_rows) and not close(grid, all_cols)
    with pytest.raises(ValueError, match="crossover_layer"):
        style_mix(stylegan, rows, cols, crossover_layer=stylegan.num_ws + 1, labels=labels)
    with pytest.raises(ValueError, match="style-based"):
        style_mix(dcgan, rows, cols, crossover_layer=1)
