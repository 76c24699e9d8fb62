"""The ingest manifest: one row per image in a source, with content hash, header facts and file-name labels.

The manifest is what every later data step works from (quality filter, balancing, packing, data checks), so
it records facts only and never fails on a bad file: a corrupt image gets null header columns here and is
quarantined with a reason by :mod:`facegen.data.quality`. I/O errors (a vanished file, S3 failing after its
retries) do raise: those mean the source is broken, and quarantining them would silently change the data set.

A ``facegen feedback-export`` folder (generated faces people rated well) is ingested by
:func:`build_feedback_manifest`: its rows carry ``origin="feedback"`` and the labels each face was requested with,
and its ``feedback.csv`` accounts for every file (see there).
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from facegen.data.labels import parse_requested_attributes, parse_utkface_name
from facegen.data.sources import FolderSource, ImageSource, open_source, read_entry

MANIFEST_COLUMNS: tuple[str, ...] = (
    "uri",
    "source",
    "origin",
    "name",
    "sha256",
    "n_bytes",
    "width",
    "height",
    "mode",
    "format",
    "age",
    "gender",
    "ethnicity",
    "age_bin",
    "label_error",
    "label_source",
    "status",
    "reason",
    "detail",
)

_NULLABLE_INTS = ("n_bytes", "width", "height", "age")

#: ``origin`` of collected photos and of generated faces people rated well (counted apart downstream).
SOURCE_ORIGIN = "source"
FEEDBACK_ORIGIN = "feedback"
#: The table of a feedback folder, one row per exported face (written by :mod:`facegen.serve.feedback_export`).
FEEDBACK_CSV = "feedback.csv"
_FEEDBACK_REQUIRED_COLUMNS = ("file", "origin", "attributes")

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


def _unread_row(entry_uri: str, reason: str, why: str) -> dict[str, Any]:
    """A quarantined row for an entry that is never read (refused as unsafe, or listed but absent)."""
    name = _entry_name(entry_uri)
    header = {"width": None, "height": None, "mode": None, "format": None}
    return {
        "uri": entry_uri,
        "name": name,
        "sha256": None,
        "n_bytes": None,
        **header,
        **_labels(name),
        "status": "quarantined",
        "reason": reason,
        "detail": why,
    }


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
) -> pd.DataFrame:
    """List ``source_uri``, optionally take a seeded subset, and describe every picked entry (see module doc).

    Every row has ``origin="source"`` (collected photos; feedback folders go through :func:`build_feedback_manifest`).
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
    return _describe(source, picked, origin=SOURCE_ORIGIN, workers=workers, progress=progress)


def _describe(
    source: ImageSource,
    entries: list[str],
    *,
    origin: str,
    workers: int,
    progress: bool,
    extra_rows: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Manifest rows for ``entries`` of ``source``, its refused entries and ``extra_rows``, ordered by URI."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(tqdm(pool.map(_ingest_row, entries), total=len(entries), desc="ingest", disable=not progress))
    rows.extend(_unread_row(source.refused_uri(name), "unsafe_path", why) for name, why in source.refused)
    rows.extend(extra_rows or [])
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest["source"] = source.uri  # which source each row came from, once several feed one run
    manifest["origin"] = origin
    manifest = manifest.sort_values("uri", kind="stable").reset_index(drop=True)
    for column in _NULLABLE_INTS:
        manifest[column] = manifest[column].astype("Int64")
    return manifest


def read_feedback_table(folder: Path) -> pd.DataFrame:
    """The ``feedback.csv`` of a feedback folder (all columns as text), or an error saying what is wrong with it."""
    path = folder / FEEDBACK_CSV
    if not path.is_file():
        raise FileNotFoundError(
            f"feedback source {folder} has no {FEEDBACK_CSV}: not a `facegen feedback-export` folder, or the export "
            "did not finish; without it neither the faces' ratings nor the attributes they were requested with are "
            "known, so none of its images is used"
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: expected a header with {list(_FEEDBACK_REQUIRED_COLUMNS)}") from None
    missing = [column for column in _FEEDBACK_REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing} (has {list(table.columns)})")
    not_feedback = table.loc[table["origin"].ne(FEEDBACK_ORIGIN), "file"].tolist()
    if not_feedback:
        raise ValueError(f"{path}: rows whose origin is not {FEEDBACK_ORIGIN!r}: {not_feedback[:5]}")
    not_bare = [name for name in table["file"] if name in ("", ".", "..") or Path(name).name != name]
    if not_bare:
        raise ValueError(f"{path}: 'file' must name a file directly in the folder, got {not_bare[:5]}")
    repeated = table.loc[table["file"].duplicated(), "file"].unique().tolist()
    if repeated:
        raise ValueError(f"{path} lists {repeated[:5]} more than once")
    return table


def _requested_labels(attributes_json: str) -> dict[str, Any]:
    labels = parse_requested_attributes(attributes_json)
    known = any(labels[name] is not None for name in ("gender", "age_bin", "ethnicity"))
    return {**labels, "label_source": "requested" if known else None}


def build_feedback_manifest(folder: str, *, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Manifest rows (``origin="feedback"``) for a ``facegen feedback-export`` folder, accounted for by feedback.csv.

    - a face the table lists is a normal pending row whose ``gender`` / ``age_bin`` / ``ethnicity`` are the attributes
      it was requested with (``label_source="requested"``; ``age`` stays null: a request names a bin, and nothing
      downstream needs years; ``{}`` gives no labels, bad attributes a ``label_error``);
    - an image the table does not list is quarantined ``feedback_unlisted``: nobody is known to have rated it well
      (e.g. left in the folder by an earlier export);
    - a listed face whose file is not there becomes a quarantined ``feedback_missing`` row, so it is not lost unseen.

    A missing or malformed feedback.csv, or a source that is not a local folder, is an error. An export without a
    single face gives a manifest with no rows: a week without well-rated faces is not a broken source.
    """
    source = open_source(folder)
    if not isinstance(source, FolderSource):
        raise ValueError(f"feedback source {folder!r} must be a folder written by `facegen feedback-export`")
    table = read_feedback_table(source.root)
    requested = dict(zip(table["file"], table["attributes"]))
    entries = source.list_entries()
    present = {Path(uri).relative_to(source.root).as_posix() for uri in entries}
    missing = [
        {
            **_unread_row(
                str(source.root / name), "feedback_missing", f"listed in {FEEDBACK_CSV} but {name} is not in the folder"
            ),
            **_requested_labels(attributes),
        }
        for name, attributes in requested.items()
        if name not in present
    ]
    manifest = _describe(
        source, entries, origin=FEEDBACK_ORIGIN, workers=workers, progress=progress, extra_rows=missing
    )
    names = manifest["uri"].map(lambda uri: Path(uri).relative_to(source.root).as_posix())
    pending = manifest["status"].eq("pending")
    listed = pending & names.isin(requested)
    for position in np.flatnonzero(listed.to_numpy()):
        for column, value in _requested_labels(requested[names.iloc[position]]).items():
            manifest.at[position, column] = value
    unlisted = pending & ~names.isin(requested)
    manifest.loc[unlisted, ["status", "reason", "detail"]] = [
        "quarantined",
        "feedback_unlisted",
        f"not listed in {FEEDBACK_CSV}: not known to be a well-rated face (left from an earlier export?)",
    ]
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
