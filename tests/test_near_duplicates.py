"""Perceptual hashes and near-duplicate grouping: agrees with imagehash, finds every pair the brute force finds."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image

from facegen.data.near_duplicates import group_near_duplicates, near_duplicate_pairs, phash_hex, to_imagehash


def test_phash_agrees_with_imagehash_on_real_faces(utkface_zip: Path, face_members: list[str]) -> None:
    with zipfile.ZipFile(utkface_zip) as archive:
        faces = [Image.open(io.BytesIO(archive.read(m))).convert("RGB") for m in face_members[:40]]
    distances = [
        to_imagehash(phash_hex(cv2.cvtColor(np.asarray(face), cv2.COLOR_RGB2GRAY))) - imagehash.phash(face)
        for face in faces
    ]
    assert np.median(distances) <= 2 and max(distances) <= 8  # same algorithm, OpenCV resize instead of Lanczos


def _random_hashes(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=n // 2, dtype=np.int64).astype(np.uint64)
    near = base ^ (np.uint64(1) << rng.integers(0, 64, size=len(base)).astype(np.uint64))  # 1-bit neighbours
    far = rng.integers(0, 2**63, size=n - 2 * len(base), dtype=np.int64).astype(np.uint64)
    return [f"{int(v):016x}" for v in np.concatenate([base, near, far])]


def test_banded_search_finds_exactly_the_brute_force_pairs() -> None:
    hashes = _random_hashes(300, seed=1)
    for distance in (0, 2, 5):
        found = {(i, j) for i, js in near_duplicate_pairs(hashes, distance).items() for j in js if i < j}
        values = [int(h, 16) for h in hashes]
        brute = {
            (i, j)
            for i in range(len(values))
            for j in range(i + 1, len(values))
            if (values[i] ^ values[j]).bit_count() <= distance
        }
        assert found == brute, distance


def test_groups_keep_the_first_member_and_respect_confirmation() -> None:
    a = "0" * 16
    b = "0" * 15 + "1"  # 1 bit from a
    c = "0" * 15 + "3"  # 2 bits from a, 1 from b
    far = "f" * 16
    assert group_near_duplicates([a, b, c, far, None], 2) == [[0, 1, 2]]
    assert group_near_duplicates([a, b, c], 1) == [[0, 1]]  # c is within 1 bit of b only, and b is taken
    assert group_near_duplicates([a, b, c], 2, confirm=lambda i, j: j != 2) == [[0, 1]]
