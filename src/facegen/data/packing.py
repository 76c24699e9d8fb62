"""Packing: turn a balancing plan into one uint8 array the trainer can hold in memory and index directly.

Images are decoded as the quality filter decoded them (:func:`facegen.data.quality.decode_rgb`), centre-cropped
to a square (faces are centred in aligned crops, so the centre keeps the face) and resized with Lanczos
antialiasing, which avoids the aliasing a plain bilinear downscale leaves in hair and skin texture.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from facegen.data.quality import decode_rgb
from facegen.data.sources import read_entry
from facegen.models.resolution import LARGEST_RESOLUTION, check_resolution


def check_packed_resolution(resolution: int) -> None:
    """The models' one side rule (facegen.models.resolution) over every architecture: packed faces must be trainable."""
    check_resolution(resolution, "packed image", LARGEST_RESOLUTION)


def load_square(uri: str, resolution: int) -> np.ndarray:
    """One image as a ``resolution``×``resolution``×3 uint8 array: decoded, centre-cropped, Lanczos-resized."""
    try:
        image = decode_rgb(read_entry(uri))
    except Exception as error:
        raise ValueError(f"cannot pack {uri!r}: {error} (was it quarantined by the quality filter?)") from error
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    # Crop first: resize(box=...) would let the filter reach pixels outside the square into its edges.
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((resolution, resolution), Image.Resampling.LANCZOS), dtype=np.uint8)


def pack_images(plan: pd.DataFrame, *, resolution: int, workers: int = 2, progress: bool = True) -> np.ndarray:
    """Pixels of every plan row, in plan order, as a C-contiguous uint8 array of shape N×3×R×R.

    A ``uri`` that appears in several rows (oversampling) is decoded once and copied.
    """
    check_packed_resolution(resolution)
    uris = plan["uri"].tolist()
    unique = list(dict.fromkeys(uris))
    slot = {uri: i for i, uri in enumerate(unique)}
    packed = np.empty((len(unique), 3, resolution, resolution), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pixels = pool.map(load_square, unique, [resolution] * len(unique))
        for i, hwc in enumerate(tqdm(pixels, total=len(unique), desc="pack", disable=not progress)):
            packed[i] = hwc.transpose(2, 0, 1)
    if len(unique) == len(uris):
        return packed
    return packed[[slot[uri] for uri in uris]]  # fancy indexing yields a new C-contiguous array
