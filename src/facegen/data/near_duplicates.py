"""Perceptual hashes and near-duplicate groups.

The hash is the DCT perceptual hash of :func:`imagehash.phash` (grey image → 32×32 → 2-D DCT → the 8×8 lowest
frequencies compared with their median → 64 bits), computed with OpenCV on the grey array the quality filter already
has (about 0.1 ms a face instead of 0.8 ms); :func:`to_imagehash` turns it into an ``imagehash.ImageHash`` for
anything that wants that type. Two images whose hashes differ in few bits look alike to a person: re-encodes,
small crops, brightness changes.

Faces aligned the same way have similar low frequencies, so on UTKFace a pHash distance alone groups different
people (at 4 bits, a third of the pairs found were different people; at 2 bits, still some). A candidate pair is
therefore *confirmed* by the correlation of the two 64×64 grey thumbnails (zero mean, unit variance): measured on
the 2,728 pairs within 6 bits on UTKFace, pairs at or above 0.96 were the same photo re-encoded, re-cropped or
retouched, and pairs below it were mostly different people (see docs/data.md).

Candidate search is exact and fast: with a distance limit ``d``, the 64 bits are cut into ``d + 1`` bands, and by the
pigeonhole principle two hashes within ``d`` bits agree on at least one band, so only hashes sharing a band value
are ever compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import cv2
import imagehash
import numpy as np

HASH_BITS = 64


def phash_hex(gray: np.ndarray) -> str:
    """64-bit DCT perceptual hash of a uint8 H×W grayscale image, as 16 hex digits."""
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def to_imagehash(hex_hash: str) -> imagehash.ImageHash:
    """The hash as an ``imagehash.ImageHash`` (``a - b`` is the Hamming distance)."""
    return imagehash.hex_to_hash(hex_hash)


def _bands(distance: int) -> list[tuple[int, int]]:
    n = distance + 1
    edges = np.linspace(0, HASH_BITS, n + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def near_duplicate_pairs(hashes: Sequence[str | None], distance: int) -> dict[int, list[int]]:
    """Neighbours within ``distance`` bits, per index (both directions); None hashes have none."""
    values = {i: int(h, 16) for i, h in enumerate(hashes) if h}
    neighbours: dict[int, set[int]] = defaultdict(set)
    for lo, hi in _bands(distance):
        shift, mask = HASH_BITS - hi, (1 << (hi - lo)) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, value in values.items():
            buckets[(value >> shift) & mask].append(i)
        for members in buckets.values():
            if len(members) < 2:
                continue
            array = np.array([values[i] for i in members], dtype=np.uint64)
            diff = np.bitwise_xor(array[:, None], array[None, :])
            counts = np.unpackbits(diff.view(np.uint8).reshape(len(members), len(members), 8), axis=-1).sum(-1)
            rows, cols = np.nonzero(np.triu(counts <= distance, k=1))
            for r, c in zip(rows.tolist(), cols.tolist()):
                neighbours[members[r]].add(members[c])
                neighbours[members[c]].add(members[r])
    return {i: sorted(js) for i, js in neighbours.items()}


def thumbnail_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally sized grey thumbnails."""
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else float(np.array_equal(a, b))


def thumbnail(gray: np.ndarray, size: int = 64) -> np.ndarray:
    """The grey thumbnail used to confirm a candidate pair."""
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def group_near_duplicates(
    hashes: Sequence[str | None], distance: int, confirm: Callable[[int, int], bool] | None = None
) -> list[list[int]]:
    """Groups (of two or more indices) of images within ``distance`` bits of their group's first member.

    ``confirm(i, j)``, when given, must also accept a pair (e.g. a thumbnail correlation) for ``j`` to join ``i``.

    ``hashes`` are in order of preference: walking them in order, each image not yet claimed becomes a
    representative and claims every unclaimed neighbour. So every group's first index is its representative and
    every other member is within ``distance`` of it (no chains of "similar to something similar").
    """
    neighbours = near_duplicate_pairs(hashes, distance)
    claimed: set[int] = set()
    groups: list[list[int]] = []
    for i in range(len(hashes)):
        if i in claimed or i not in neighbours:
            continue
        members = [j for j in neighbours[i] if j not in claimed and (confirm is None or confirm(i, j))]
        claimed.add(i)
        if members:
            claimed.update(members)
            groups.append([i, *members])
    return groups
