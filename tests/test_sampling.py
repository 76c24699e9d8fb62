"""Sampling: seeded, deterministic uint8 faces; truncation and labels; interpolation in z and W; style-mixing grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.models.registry import build_generator
from facegen.models.sampling import generate_images, interpolate, seeded_latents, slerp, style_mix, to_uint8

STYLEGAN = {"resolution": 32, "latent_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 128, "channel_max": 16}
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
    """Equal up to one uint8 level (batched float arithmetic may round a pixel the other way)."""
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_latents_and_uint8_conversion():
    assert torch.equal(seeded_latents(3, 8, seed=5), seeded_latents(3, 8, seed=5))
    assert not torch.equal(seeded_latents(3, 8, seed=5), seeded_latents(3, 8, seed=6))
    assert to_uint8(torch.tensor([[[[-1.0, 0.0, 1.0, 7.0]]]])).tolist() == [[[[0, 128, 255, 255]]]]


def test_generate_images_is_seeded_and_restores_the_mode(dcgan, stylegan):
    dcgan.train()
    faces = generate_images(dcgan, 5, seed=1)
    assert faces.dtype == np.uint8 and faces.shape == (5, 3, 16, 16)
    assert np.array_equal(faces, generate_images(dcgan, 5, seed=1))
    assert close(faces, generate_images(dcgan, 5, seed=1, batch_size=2))
    assert dcgan.training
    stylegan.train()
    styled = generate_images(stylegan, 4, seed=2, labels=[1, -1])
    assert np.array_equal(styled, generate_images(stylegan, 4, seed=2, labels=torch.tensor([[1, -1]])))
    assert close(styled, generate_images(stylegan, 4, seed=2, labels=[1, -1], batch_size=3))
    assert stylegan.training


def test_labels_per_face_or_shared(stylegan, dcgan):
    rows = np.array([[0, 3], [1, 3], [0, -1]])
    faces = generate_images(stylegan, 3, seed=4, labels=rows)
    assert close(faces[1:2], generate_images(stylegan, 3, seed=4, labels=[1, 3])[1:2])
    assert not np.array_equal(faces[0], generate_images(stylegan, 3, seed=4, labels=[1, 3])[0])
    with pytest.raises(ValueError, match="pass labels"):
        generate_images(stylegan, 2, seed=0)
    with pytest.raises(ValueError, match="integer"):
        generate_images(stylegan, 2, seed=0, labels=[0.5, 1.0])
    with pytest.raises(ValueError, match="unconditional"):
        generate_images(dcgan, 2, seed=0, labels=[0])


def test_truncation_psi_zero_gives_one_face(stylegan, dcgan):
    faces = generate_images(stylegan, 3, seed=7, labels=[0, 2], truncation_psi=0.0)
    assert all(np.array_equal(face, faces[0]) for face in faces)
    assert not np.array_equal(faces, generate_images(stylegan, 3, seed=7, labels=[0, 2]))
    mean_faces = generate_images(dcgan, 3, seed=7, truncation_psi=0.0)
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
    assert close(frames[0], generate_images(stylegan, 1, seed=11, labels=[1, 4])[0])
    assert close(frames[-1], generate_images(stylegan, 1, seed=12, labels=[1, 4])[0])
    assert np.array_equal(frames, interpolate(stylegan, 11, 12, 6, space=space, labels=[1, 4]))


def test_dcgan_interpolates_in_z_only(dcgan):
    frames = interpolate(dcgan, 1, 2, 3)
    assert close(frames[0], generate_images(dcgan, 1, seed=1)[0])
    with pytest.raises(ValueError, match="style-based"):
        interpolate(dcgan, 1, 2, 3, space="w")


def test_style_mixing_grid(stylegan, dcgan):
    rows, cols, labels = [1, 2, 3], [4, 5], [0, -1]
    grid = style_mix(stylegan, rows, cols, crossover_layer=4, labels=labels)
    assert grid.shape == (6, 3, 32, 32) and grid.dtype == np.uint8
    assert np.array_equal(grid, style_mix(stylegan, rows, cols, crossover_layer=4, labels=labels))
    row_faces = np.concatenate([generate_images(stylegan, 1, seed=s, labels=labels) for s in rows])
    col_faces = np.concatenate([generate_images(stylegan, 1, seed=s, labels=labels) for s in cols])
    all_rows = style_mix(stylegan, rows, cols, crossover_layer=stylegan.num_ws, labels=labels)
    all_cols = style_mix(stylegan, rows, cols, crossover_layer=0, labels=labels)
    assert close(all_rows, np.repeat(row_faces, 2, axis=0))  # face r·cols + c is row r's
    assert close(all_cols, np.tile(col_faces, (3, 1, 1, 1)))
    assert not close(grid, all_rows) and not close(grid, all_cols)
    with pytest.raises(ValueError, match="crossover_layer"):
        style_mix(stylegan, rows, cols, crossover_layer=stylegan.num_ws + 1, labels=labels)
    with pytest.raises(ValueError, match="style-based"):
        style_mix(dcgan, rows, cols, crossover_layer=1)
