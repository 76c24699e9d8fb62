"""The training set as a shard set: WebDataset tar shards of faces (PNG or raw npy) under one URI (a folder, ``s3://…``), with an
index that holds each shard's SHA-256 and each image's byte range, and the plan's rows (image, labels, weight).

Why this layout: object stores and disks serve large sequential objects well, so the trainer streams whole shards
(bounded memory whatever the resolution: at 1024² the shared faces are ~73 GB as pixels); the byte ranges give
random access to a few faces (evaluation's real sample) without reading whole shards; any tar tool or
``webdataset.WebDataset`` reads the shards. Faces are stored lossless either way, so a set decoded into memory is
pixel-identical to :func:`facegen.data.packing.pack_images` and trains exactly as the packed array did: ``png``
(compact: 8 kB a face at 64², 0.75 MB at 1024²) or ``npy`` (raw uint8: 1.4× PNG's bytes at 64², 4× at 1024², decoded
5× faster at 64² and 17× at 1024²: for streaming faster than PNG decoding keeps up, docs/benchmarks.md).

Rows are the balancing plan's rows (oversampled faces repeat); each distinct face is stored once. A shard that
cannot be read, or whose bytes do not match the index, is retried and then raises :class:`ShardError` naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import webdataset
from PIL import Image
from tqdm.auto import tqdm

from facegen.data.label_encoding import encode_attribute_labels
from facegen.data.packing import check_packed_resolution, load_square

INDEX_FILE = "index.json"
ROWS_FILE = "rows.npz"
FORMAT = "facegen-shards/1"
READ_ATTEMPTS = 3
IMAGE_FORMATS = ("png", "npy")


class ShardError(RuntimeError):
    """A shard is missing, unreadable or not what the index says, after retries."""


@dataclass(frozen=True)
class ShardInfo:
    name: str
    images: int
    bytes: int
    sha256: str


def write_shards(
    plan: pd.DataFrame,
    uri: str,
    *,
    resolution: int,
    images_per_shard: int = 1000,
    image_format: str = "png",
    workers: int = 2,
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> ShardSet:
    """Pack every distinct face of ``plan`` (its ``uri`` column) into tar shards of ``images_per_shard`` faces under
    ``uri``, ``workers`` shards at a time, then write the index and the rows (labels, ``sample_weight``)."""
    check_packed_resolution(resolution)
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if images_per_shard < 1:
        raise ValueError(f"images_per_shard must be >= 1, got {images_per_shard}")
    if plan.empty:
        raise ValueError("the sampling plan has no rows: nothing to pack")
    uris = plan["uri"].tolist()
    unique = list(dict.fromkeys(uris))
    chunks = [unique[start : start + images_per_shard] for start in range(0, len(unique), images_per_shard)]
    fs, root = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    fs.makedirs(root, exist_ok=True)

    def pack(number: int) -> tuple[ShardInfo, list[tuple[int, int]]]:
        return _write_shard(fs, root, number, chunks[number], resolution, image_format)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(tqdm(pool.map(pack, range(len(chunks))), total=len(chunks), desc="shards", disable=not progress))
    image_of = {image_uri: i for i, image_uri in enumerate(unique)}
    shard_of_image = np.repeat(np.arange(len(chunks)), [len(chunk) for chunk in chunks])
    ranges = np.array([span for _, spans in results for span in spans], dtype=np.int64)
    with fs.open(f"{root}/{ROWS_FILE}", "wb") as handle:
        np.savez(
            handle,
            image=np.array([image_of[u] for u in uris], dtype=np.int64),
            labels=encode_attribute_labels(plan),
            weights=plan["sample_weight"].to_numpy(dtype=np.float64),
            shard=shard_of_image,
            offset=ranges[:, 0],
            size=ranges[:, 1],
        )
    index = {
        "format": FORMAT,
        "resolution": resolution,
        "rows": len(uris),
        "images": len(unique),
        "images_per_shard": images_per_shard,
        "image_format": image_format,
        "rows_sha256": hashlib.sha256(fs.cat_file(f"{root}/{ROWS_FILE}")).hexdigest(),
        "shards": [info.__dict__ for info, _ in results],
    }
    fs.pipe_file(f"{root}/{INDEX_FILE}", json.dumps(index, indent=1).encode())
    return ShardSet(uri, storage_options)


def _write_shard(
    fs: fsspec.AbstractFileSystem, root: str, number: int, uris: list[str], resolution: int, image_format: str
) -> tuple[ShardInfo, list[tuple[int, int]]]:
    """One shard: faces encoded into a local tar (one face in memory at a time), hashed, then uploaded."""
    name = f"shard-{number:06d}.tar"
    with tempfile.TemporaryDirectory(prefix="facegen-shard-") as scratch:
        local = os.path.join(scratch, name)
        with open(local, "wb") as stream, webdataset.TarWriter(stream, encoder=False, mtime=0) as tar:
            for position, image_uri in enumerate(uris):
                encoded = io.BytesIO()
                pixels = load_square(image_uri, resolution)
                if image_format == "png":
                    Image.fromarray(pixels).save(encoded, format="PNG", compress_level=1)
                else:
                    np.save(encoded, pixels)
                tar.write({"__key__": f"{number:06d}{position:06d}", image_format: encoded.getvalue()})
        with tarfile.open(local) as archive:
            spans = [(member.offset_data, member.size) for member in archive.getmembers()]
        if len(spans) != len(uris):
            raise ShardError(f"{name}: wrote {len(spans)} members for {len(uris)} faces")
        with open(local, "rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()
        fs.put_file(local, f"{root}/{name}")
        return ShardInfo(name, len(uris), os.path.getsize(local), digest), spans


class ShardSet:
    """A written shard set, opened by URI (and the fsspec storage options of its store: endpoint, keys)."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.storage_options = dict(storage_options or {})

    def __repr__(self) -> str:
        return f"ShardSet({self.uri!r}, {len(self.shards)} shards, {len(self)} rows at {self.resolution}²)"

    def __getstate__(self) -> dict[str, Any]:  # what crosses process boundaries: where, not what was cached
        return {"uri": self.uri, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["storage_options"])

    @cached_property
    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.uri, **self.storage_options)

    @cached_property
    def index(self) -> dict[str, Any]:
        fs, root = self._fs
        try:
            index = json.loads(fs.cat_file(f"{root}/{INDEX_FILE}"))
        except FileNotFoundError as error:
            raise ShardError(
                f"no shard index at {self.uri}/{INDEX_FILE}: not a shard set, or an unfinished one"
            ) from error
        if index.get("format") != FORMAT:
            raise ShardError(f"{self.uri}: index format {index.get('format')!r}, expected {FORMAT!r}")
        return index

    @cached_property
    def _rows(self) -> dict[str, np.ndarray]:
        fs, root = self._fs
        data = fs.cat_file(f"{root}/{ROWS_FILE}")
        if hashlib.sha256(data).hexdigest() != self.index["rows_sha256"]:
            raise ShardError(f"{self.uri}/{ROWS_FILE} does not match the index's hash")
        with np.load(io.BytesIO(data)) as rows:
            return {key: rows[key] for key in rows.files}

    @property
    def shards(self) -> list[ShardInfo]:
        return [ShardInfo(**entry) for entry in self.index["shards"]]

    @property
    def resolution(self) -> int:
        return int(self.index["resolution"])

    def __len__(self) -> int:
        return int(self.index["rows"])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The shape the packed array had: rows × 3 × R × R."""
        return len(self), 3, self.resolution, self.resolution

    @property
    def nbytes(self) -> int:
        """Bytes of every row decoded to uint8, as the in-memory path holds them."""
        return int(np.prod(self.shape))

    @property
    def labels(self) -> np.ndarray:
        """N×3 int64 label indices per row (facegen.data.label_encoding; −1 = unspecified)."""
        return self._rows["labels"]

    @property
    def sample_weights(self) -> np.ndarray:
        return self._rows["weights"]

    @property
    def image_of_row(self) -> np.ndarray:
        """Which stored face each row is (rows of an oversampled face share it)."""
        return self._rows["image"]

    @property
    def shard_of_image(self) -> np.ndarray:
        """Which shard holds each stored face (faces are stored in id order, so each shard's ids are a range)."""
        return self._rows["shard"]

    @property
    def shard_of_row(self) -> np.ndarray:
        return self.shard_of_image[self.image_of_row]

    def unique_rows(self) -> np.ndarray:
        """The first row of each distinct face, in row order (real statistics weigh each face once)."""
        _, first = np.unique(self.image_of_row, return_index=True)
        return np.sort(first)

    def read_shard(self, number: int) -> bytes:
        """Shard ``number``'s bytes, checked against the index's size and SHA-256; retried, then ShardError."""
        info = self.shards[number]
        fs, root = self._fs
        problem = ""
        for attempt in range(READ_ATTEMPTS):
            if attempt:
                time.sleep(0.2 * 2**attempt)
            try:
                data = fs.cat_file(f"{root}/{info.name}")
            except Exception as error:  # missing object, connection reset, throttling: all worth a retry
                problem = f"{type(error).__name__}: {error}"
                continue
            if len(data) == info.bytes and hashlib.sha256(data).hexdigest() == info.sha256:
                return data
            problem = f"{len(data)} bytes whose SHA-256 does not match the index ({info.bytes} bytes expected)"
        raise ShardError(f"shard {info.name} of {self.uri}: {problem} (after {READ_ATTEMPTS} attempts)")

    def decode_shard(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """All faces of one shard as uint8 K×3×R×R, with the image ids they are (in shard order)."""
        data = memoryview(self.read_shard(number))
        images = np.flatnonzero(self._rows["shard"] == number)
        offsets, sizes = self._rows["offset"][images], self._rows["size"][images]
        pixels = np.stack([self._decode(data[o : o + s]) for o, s in zip(offsets, sizes)])
        return pixels, images

    def read_rows(self, rows: Iterable[int], *, workers: int = 2, progress: bool = False) -> np.ndarray:
        """uint8 pixels of ``rows`` (in that order) by byte-range reads: for a sample, not for the whole set."""
        rows = np.asarray(list(rows), dtype=np.int64)
        images = self.image_of_row[rows]
        wanted = np.unique(images)
        fs, root = self._fs
        names = [self.shards[s].name for s in self._rows["shard"][wanted]]

        def fetch(i: int) -> np.ndarray:
            image = wanted[i]
            start, size = int(self._rows["offset"][image]), int(self._rows["size"][image])
            data = fs.cat_file(f"{root}/{names[i]}", start=start, end=start + size)
            return self._decode(data)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            decoded = list(
                tqdm(pool.map(fetch, range(len(wanted))), total=len(wanted), desc="read", disable=not progress)
            )
        out = np.empty((len(rows), 3, self.resolution, self.resolution), dtype=np.uint8)
        slot = np.searchsorted(wanted, images)
        for i, position in enumerate(slot):
            out[i] = decoded[position]
        return out

    def _decode(self, encoded: bytes | memoryview) -> np.ndarray:
        """One stored face, as 3×R×R uint8."""
        if self.index["image_format"] == "npy":
            pixels = np.load(io.BytesIO(encoded), allow_pickle=False)
        else:
            with Image.open(io.BytesIO(encoded)) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if pixels.shape != (self.resolution, self.resolution, 3) or pixels.dtype != np.uint8:
            raise ShardError(f"a stored face is {pixels.dtype} {pixels.shape}, expected uint8 {self.resolution}²×3")
        return pixels.transpose(2, 0, 1)

    def to_array(self, *, workers: int = 2, progress: bool = True) -> np.ndarray:
        """Every row decoded, in row order: the N×3×R×R array the in-memory trainer holds (whole shards read)."""
        faces = np.empty((int(self.index["images"]), 3, self.resolution, self.resolution), dtype=np.uint8)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            decoded = pool.map(self.decode_shard, range(len(self.shards)))
            for pixels, images in tqdm(decoded, total=len(self.shards), desc="decode shards", disable=not progress):
                faces[images] = pixels
        return faces[self.image_of_row]
