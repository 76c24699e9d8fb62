"""Faces as packed uint8 tensors, labels as class indices, and the seeded held-out split.

The split is decided per image by a seeded hash of its sha256, so it does not depend on listing order or on
which other images are present, and byte-identical copies always land on the same side.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from facegen.attributes_model.network import HEADS
from facegen.data.packing import load_square

MISSING = -1


def holdout_mask(sha256: pd.Series, *, fraction: float, seed: int) -> np.ndarray:
    """True for rows in the held-out split: ``sha256(f"{seed}:{sha}") mod 10_000 < fraction * 10_000``."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    cut = int(round(fraction * 10_000))
    keys = sha256.astype(str).map(lambda sha: int(hashlib.sha256(f"{seed}:{sha}".encode()).hexdigest()[:8], 16))
    return (keys.to_numpy() % 10_000) < cut


def encode_labels(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Class index per row and head (int64, :data:`MISSING` where the label is null)."""
    encoded = {}
    for name, classes in HEADS.items():
        lookup = {value: index for index, value in enumerate(classes)}
        column = frame[name] if name in frame else pd.Series(None, index=frame.index, dtype=object)
        unknown = set(column.dropna()) - set(lookup)
        if unknown:
            raise ValueError(f"column {name!r} has values outside its vocabulary: {sorted(unknown)[:5]}")
        encoded[name] = column.map(lambda v: lookup.get(v, MISSING) if pd.notna(v) else MISSING).to_numpy(np.int64)
    return encoded


def pack_faces(uris: list[str], size: int, *, workers: int = 2, progress: bool = False) -> np.ndarray:
    """Decoded (as the quality filter decodes), centre-cropped, Lanczos-resized faces: uint8 N×3×size×size."""
    packed = np.empty((len(uris), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pixels = pool.map(load_square, uris, [size] * len(uris), chunksize=64)
        for i, hwc in enumerate(tqdm(pixels, total=len(uris), desc="pack faces", disable=not progress)):
            packed[i] = hwc.transpose(2, 0, 1)
    return packed


def labelled_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Kept rows with at least one attribute label, in manifest order."""
    kept = manifest[manifest["status"].eq("kept")] if "status" in manifest else manifest
    has_label = np.zeros(len(kept), dtype=bool)
    for name in HEADS:
        if name in kept:
            has_label |= kept[name].notna().to_numpy()
    return kept[has_label].reset_index(drop=True)


def split_frame(
    manifest: pd.DataFrame, *, holdout_fraction: float, seed: int, max_images: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) from the labelled kept rows; ``max_images`` takes a seeded subset first (smoke runs)."""
    rows = labelled_rows(manifest)
    if rows.empty:
        raise ValueError("no labelled kept images to train the attribute model on")
    if max_images is not None and max_images < len(rows):
        rows = rows.sample(n=max_images, random_state=seed).sort_index().reset_index(drop=True)
    held = holdout_mask(rows["sha256"], fraction=holdout_fraction, seed=seed)
    return rows[~held].reset_index(drop=True), rows[held].reset_index(drop=True)
