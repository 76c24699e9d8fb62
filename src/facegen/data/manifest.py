"""The ingest manifest: one row per image in a source, with content hash, header facts and file-name labels.

The manifest is what every later data step works from (quality filter, balancing, packing, data checks), so
it records facts only and never fails on a bad file: a corrupt image gets null header columns here and is
quarantined with a reason by :mod:`facegen.data.quality`. I/O errors (a vanished file, S3 failing after its
retries) do raise: those mean the source is broken, and quarantining them would silently change the data set.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from facegen.data.labels import parse_utkface_name
from facegen.data.sources import open_source, read_entry

MANIFEST_COLUMNS: tuple[str, ...] = (
    "uri", "source", "origin", "name", "sha256", "n_bytes", "width", "height", "mode", "format",
    "age", "gender", "ethnicity", "age_bin", "label_error", "label_source",
    "status", "reason", "detail",
)  # fmt: skip

_NULLABLE_INTS = ("n_bytes", "width", "height", "age")

# EXIF orientations that swap width and height (rotations by 90/270 degrees, with or without a mirror).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def _entry_name(entry_uri: str) -> str:
    return entry_uri.rsplit("/", 1)[-1]


def _header_facts(data: bytes) -> dict[str, Any]:
    """Size (as displayed, after EXIF orientation), mode and format from the header only, without decoding.

    Any failure gives nulls: an unreadable header is the quality filter's to judge, not ingest's.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
            return {"width": width, "height": height, "mode": image.mode, "format": image.format}
    except Exception:  # noqa: BLE001 - PIL raises many types for bad input; all mean "unreadable header"
        return {"width": None, "height": None, "mode": None, "format": None}


def _labels(name: str) -> dict[str, Any]:
    labels = parse_utkface_name(name)
    labels["label_source"] = "filename" if labels["age"] is not None else None
    return labels


def _ingest_row(entry_uri: str) -> dict[str, Any]:
    try:
        data = read_entry(entry_uri)
    except Exception as error:
        raise OSError(f"could not read {entry_uri!r}: {error}") from error
    name = _entry_name(entry_uri)
    return {
        "uri": entry_uri,
        "name": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "n_bytes": len(data),
        **_header_facts(data),
        **_labels(name),
        "status": "pending",
        "reason": None,
        "detail": None,
    }


def _refused_row(entry_uri: str, why: str) -> dict[str, Any]:
    name = _entry_name(entry_uri)
    header = {"width": None, "height": None, "mode": None, "format": None}
    return {"uri": entry_uri, "name": name, "sha256": None, "n_bytes": None, **header, **_labels(name),
            "status": "quarantined", "reason": "unsafe_path", "detail": why}  # fmt: skip


def seeded_subset(entries: list[str], max_images: int | None, seed: int) -> list[str]:
    """A sorted random subset of at most ``max_images`` entries, the same for the same listing and seed."""
    if max_images is None or max_images >= len(entries):
        return list(entries)
    if max_images < 1:
        raise ValueError(f"max_images must be positive, got {max_images}")
    picked = np.random.default_rng(seed).choice(len(entries), size=max_images, replace=False)
    return [entries[i] for i in sorted(picked)]


def build_manifest(
    source_uri: str,
    *,
    max_images: int | None = None,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    origin: str = "source",
) -> pd.DataFrame:
    """List ``source_uri``, optionally take a seeded subset, and describe every picked entry (see module doc).

    ``origin`` labels every row: ``source`` for collected photos, ``feedback`` for user-approved generated faces
    (a ``facegen feedback-export`` folder), so the two are counted apart downstream.

    Entries refused by the source for safety (e.g. ``..`` zip members) are always added as rows with
    ``status="quarantined"``, ``reason="unsafe_path"``, whatever ``max_images`` is, so nothing vanishes
    unrecorded. Rows are ordered by URI; normal rows have ``status="pending"`` until the quality filter runs.
    """
    source = open_source(source_uri)
    entries = source.list_entries()
    if not entries:
        refused = f" ({len(source.refused)} refused as unsafe)" if source.refused else ""
        raise ValueError(f"no images found in source {source.uri}{refused}")
    picked = seeded_subset(entries, max_images, seed)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(tqdm(pool.map(_ingest_row, picked), total=len(picked), desc="ingest", disable=not progress))
    rows.extend(_refused_row(source.refused_uri(name), why) for name, why in source.refused)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest["source"] = source.uri  # which source each row came from, once several feed one run
    manifest["origin"] = origin
    manifest = manifest.sort_values("uri", kind="stable").reset_index(drop=True)
    for column in _NULLABLE_INTS:
        manifest[column] = manifest[column].astype("Int64")
    return manifest


def manifest_hash(manifest: pd.DataFrame) -> str:
    """Content key of a manifest: sha256 over its sorted ``(uri, sha256)`` pairs (row order does not matter).

    Used to key cached statistics (e.g. FID reference features) to exactly this set of images.
    """
    digest = hashlib.sha256()
    pairs = sorted(zip(manifest["uri"].astype(str), manifest["sha256"].fillna("").astype(str)))
    for uri, sha in pairs:
        digest.update(f"{uri}\t{sha}\n".encode())
    return digest.hexdigest()
