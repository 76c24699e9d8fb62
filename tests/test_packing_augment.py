"""Packing real faces into uint8 arrays, and batch augmentation that keeps shape, range and meaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facegen.data.augment import augment_batch, to_unit_range
from facegen.data.packing import pack_images
from facegen.data.sources import open_source

NO_JITTER = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0}


@pytest.fixture(scope="module")
def face_uris(utkface_zip: Path) -> list[str]:
    return open_source(str(utkface_zip)).list_entries()[:4]


def test_packs_real_faces_in_plan_order_decoding_repeats_once(face_uris: list[str]) -> None:
    plan = pd.DataFrame({"uri": [face_uris[0], face_uris[1], face_uris[0], face_uris[2], face_uris[3]]})

    packed = pack_images(plan, resolution=32, progress=False)

    assert packed.shape == (5, 3, 32, 32) and packed.dtype == np.uint8 and packed.flags.c_contiguous
    assert np.array_equal(packed[0], packed[2])
    assert not np.array_equal(packed[0], packed[1])
    assert packed.min() < 40 and packed.max() > 200  # real contrast survives, no rescaling to a narrow band


@pytest.mark.parametrize(("size", "stripes"), [((120, 60), "horizontal"), ((60, 120), "vertical")])
def test_non_square_images_are_centre_cropped(tmp_path: Path, size: tuple[int, int], stripes: str) -> None:
    """Red | blue | green thirds (blue is the centred square): only blue may survive the crop."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    if stripes == "horizontal":
        pixels[:, :30, 0], pixels[:, 30:90, 2], pixels[:, 90:, 1] = 255, 255, 255
    else:
        pixels[:30, :, 0], pixels[30:90, :, 2], pixels[90:, :, 1] = 255, 255, 255
    path = tmp_path / "stripes.png"
    Image.fromarray(pixels).save(path)

    packed = pack_images(pd.DataFrame({"uri": [str(path)]}), resolution=16, progress=False)[0]

    assert packed.shape == (3, 16, 16)
    assert (packed[2] == 255).all() and (packed[:2] == 0).all()  # pure blue: nothing from outside the square


def test_exif_orientation_is_applied_before_cropping(tmp_path: Path) -> None:
    pixels = np.zeros((60, 60, 3), dtype=np.uint8)
    pixels[:, :30] = 255  # stored: white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise: the white half ends up on top
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)

    packed = pack_images(pd.DataFrame({"uri": [str(path)]}), resolution=8, progress=False)[0]

    assert packed[:, :3].mean() > 230 and packed[:, 5:].mean() < 25


@pytest.mark.parametrize("resolution", [0, 4, 12, 48, 100, 2048, True, 32.0])
def test_resolution_must_be_a_power_of_two_from_8_to_1024(resolution: object) -> None:
    with pytest.raises(
        ValueError, match=f"packed image resolution must be a power of two from 8 to 1024, got {resolution!r}"
    ):
        pack_images(pd.DataFrame({"uri": []}), resolution=resolution, progress=False)


def test_to_unit_range_maps_uint8_onto_minus_one_one() -> None:
    pixels = np.array([0, 127, 255], dtype=np.uint8).reshape(1, 3, 1, 1)

    for batch in (pixels, torch.from_numpy(pixels)):
        out = to_unit_range(batch)
        assert out.dtype == torch.float32
        assert out.flatten().tolist() == pytest.approx([-1.0, 127 / 127.5 - 1.0, 1.0])
    with pytest.raises(TypeError, match="uint8"):
        to_unit_range(torch.zeros(1, 3, 1, 1))


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(16, 3, 24, 24, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_augmentation_keeps_shape_dtype_and_range() -> None:
    images = _batch()

    out = augment_batch(images, generator=torch.Generator().manual_seed(1), max_rotation_deg=10.0, brightness=0.5)

    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert not torch.equal(out, images)


def test_flip_only_equals_torch_flip_and_nothing_is_identity() -> None:
    images = _batch()

    flipped = augment_batch(images, generator=None, flip_p=1.0, max_rotation_deg=0.0, **NO_JITTER)
    unchanged = augment_batch(images, generator=None, flip_p=0.0, max_rotation_deg=0.0, **NO_JITTER)

    assert torch.equal(flipped, torch.flip(images, dims=[-1]))
    assert torch.equal(unchanged, images)


def test_augmentation_is_per_sample_and_seeded() -> None:
    images = _batch()

    out = augment_batch(images, generator=torch.Generator().manual_seed(5), max_rotation_deg=0.0, **NO_JITTER)
    again = augment_batch(images, generator=torch.Generator().manual_seed(5), max_rotation_deg=0.0, **NO_JITTER)

    flipped = torch.tensor([torch.equal(o, torch.flip(i, dims=[-1])) for o, i in zip(out, images)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    assert (flipped | kept).all() and flipped.any() and kept.any()
    assert torch.equal(out, again)


def test_small_rotation_moves_pixels_but_keeps_the_picture() -> None:
    images, rng = _batch(), torch.Generator().manual_seed(2)

    out = augment_batch(images, generator=rng, flip_p=0.0, max_rotation_deg=5.0, **NO_JITTER)

    assert not torch.equal(out, images)
    centre = (slice(None), slice(None), slice(10, 14), slice(10, 14))
    assert (out[centre] - images[centre]).abs().mean() < (out - images).abs().mean()  # centre moves least


def test_augmentation_is_differentiable() -> None:
    images = _batch().requires_grad_(True)

    augment_batch(images, generator=torch.Generator().manual_seed(0)).sum().backward()

    assert images.grad is not None and torch.isfinite(images.grad).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_with_cpu_generator_stays_on_cuda() -> None:
    images = _batch().cuda()

    out = augment_batch(images, generator=torch.Generator().manual_seed(0))

    assert out.device == images.device and out.shape == images.shape
    assert out.min() >= -1.0 and out.max() <= 1.0
