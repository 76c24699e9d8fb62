"""Quality filter: decide per manifest row whether an image is kept for training or quarantined, and why.

Nothing is ever dropped: every row comes back as ``kept`` or ``quarantined`` with a ``reason`` from
:data:`QUARANTINE_REASONS`, so data checks and reports can account for every ingested file.

Per image, first failure wins:

- ``decompression_bomb``: the header declares more than ``max_pixels`` pixels (or Pillow's own bomb limit
  fires); the image is never decoded;
- ``undecodable``: the full decode fails (truncated, empty, not an image…; the PIL error is in ``detail``);
- ``too_small``: shorter side below ``min_side``;
- ``grayscale``: only with ``grayscale="drop"`` (grayscale images are always *flagged* in column ``grayscale``);
- ``blurry``: variance of the Laplacian below ``blur_threshold``;
- ``no_face``: the face check (:mod:`facegen.data.faces`, an OpenCV Haar cascade) finds no face with enough
  support (``face_score`` below ``min_face_score``);

then over the set: byte-identical copies of an earlier row are ``duplicate_sha256`` without being decoded again,
and kept images whose perceptual hashes lie within ``near_duplicate_distance`` bits of each other, and whose 64×64
grey thumbnails correlate at least ``near_duplicate_min_correlation``, are grouped (see
:mod:`facegen.data.near_duplicates`); each group keeps one representative (most pixels, then sharpest, then
first in manifest order) and the others become ``near_duplicate``. Rows quarantined at ingest (``unsafe_path``,
``feedback_unlisted``, ``feedback_missing``) keep their reason.

Generated faces (``origin == "feedback"``, from ``facegen feedback-export``) arrive at the generator's resolution, so
they are judged on size and sharpness by :class:`FeedbackThresholds` (``feedback``) instead of ``min_side`` and
``blur_threshold``; every other check, and the duplicate checks across both origins, apply to them unchanged.

Decoding survives anything Pillow opens: EXIF orientation is applied; CMYK, palette, 16-bit and 32-bit integer
images are converted to 8-bit RGB with their full range preserved; transparency (LA, RGBA, PA, palette with a
transparent index) is composited on a neutral grey background.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from facegen.config_keys import dataclass_from_dict, reject_unknown
from facegen.data.faces import FaceCheck, FaceDetector
from facegen.data.manifest import FEEDBACK_ORIGIN, SOURCE_ORIGIN
from facegen.data.near_duplicates import group_near_duplicates, phash_hex, thumbnail, thumbnail_correlation
from facegen.data.sources import read_entry

QUARANTINE_REASONS: tuple[str, ...] = (
    "unsafe_path",
    "feedback_unlisted",  # set at ingest: an image in a feedback folder that its feedback.csv does not list
    "feedback_missing",  # set at ingest: a face feedback.csv lists whose file is not in the folder
    "decompression_bomb",
    "undecodable",
    "too_small",
    "grayscale",
    "blurry",
    "no_face",
    "duplicate_sha256",
    "near_duplicate",
    "low_confidence",  # set by tagging (facegen.data.tagging), only when a threshold is configured
)

#: Columns the quality filter adds to (or refreshes in) the manifest.
QUALITY_COLUMNS: tuple[str, ...] = ("blur_score", "grayscale", "face_score", "phash")

#: Background transparent images are composited on (mid grey: neither a white nor a black halo around the face).
NEUTRAL_BACKGROUND: tuple[int, int, int] = (128, 128, 128)

GRAYSCALE_POLICIES: tuple[str, ...] = ("keep", "drop")

_CHUNK = 32
# Largest channel difference (0-255) still counted as grey: JPEG chroma noise on a grey photo stays below it.
_GRAY_TOLERANCE = 6


class DecompressionBomb(Exception):
    """The image declares more pixels than the configured limit; it is not decoded."""


@dataclass(frozen=True)
class FeedbackThresholds:
    """Size and sharpness thresholds for generated faces, calibrated at the generator's resolution (docs/data.md).

    The photo thresholds do not transfer: every 32 px face is below ``min_side`` 64, and the variance of the Laplacian
    grows as an image shrinks (real UTKFace faces packed to 32 px score ~70x their native 200 px score), so 7.0 would
    pass anything. The default ``blur_threshold`` rejects the same share of real faces packed to 32 px (1.6 %) as 7.0
    does at their native size; measured for other sizes: 16 px 1430, 64 px 105. ``min_side`` should be the training
    resolution, so packing never enlarges a generated face.
    """

    min_side: int = 32
    blur_threshold: float = 690.0

    def __post_init__(self) -> None:
        if self.min_side < 1:
            raise ValueError(f"feedback.min_side must be >= 1, got {self.min_side}")
        if self.blur_threshold < 0:
            raise ValueError(f"feedback.blur_threshold must be >= 0, got {self.blur_threshold}")


@dataclass(frozen=True)
class QualityConfig:
    """Every threshold of the quality filter (see the module doc for what each one quarantines): the one home of
    their defaults. ``quality_filter.parameters.quality`` in the configs; ``validate_data`` holds kept rows to the
    config the filter used (facegen.validation.expectations)."""

    min_side: int = 64
    blur_threshold: float = 7.0
    feedback: FeedbackThresholds = FeedbackThresholds()  # min_side / blur_threshold of origin=feedback rows
    grayscale: str = "keep"  # keep | drop
    max_pixels: int = 40_000_000
    near_duplicate_distance: int | None = 6  # Hamming bits of the 64-bit pHash; None disables the check
    near_duplicate_min_correlation: float = 0.96  # 64×64 grey thumbnails must correlate at least this much
    face_check: FaceCheck | None = None  # None: no face check (face_score stays NaN)

    def __post_init__(self) -> None:
        if self.min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {self.min_side}")
        if self.blur_threshold < 0:
            raise ValueError(f"blur_threshold must be >= 0, got {self.blur_threshold}")
        if self.grayscale not in GRAYSCALE_POLICIES:
            raise ValueError(f"grayscale must be one of {GRAYSCALE_POLICIES}, got {self.grayscale!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.near_duplicate_distance is not None and not 0 <= self.near_duplicate_distance < 32:
            raise ValueError(f"near_duplicate_distance must be in 0..31 or null, got {self.near_duplicate_distance}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> QualityConfig:
        """From YAML values (``face_check: {enabled, …}``, ``feedback: {min_side, blur_threshold}``); missing keys
        take the defaults above, an unknown key (at any level) is a ValueError naming it."""
        values = dict(values or {})
        reject_unknown(values, (f.name for f in fields(cls)), "quality")
        face = values.pop("face_check", None)
        if isinstance(face, dict):
            face = dict(face)
            face = dataclass_from_dict(FaceCheck, face, "quality.face_check") if face.pop("enabled", True) else None
        feedback = dataclass_from_dict(FeedbackThresholds, values.pop("feedback", None), "quality.feedback")
        return cls(face_check=face, feedback=feedback, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values that :meth:`from_dict` turns back into this config (``face_check: null`` when off)."""
        return asdict(self)

    def size_and_blur(self, origin: str) -> tuple[int, float]:
        """``(min_side, blur_threshold)`` for a row of this ``origin``: generated faces have their own."""
        if origin == FEEDBACK_ORIGIN:
            return self.feedback.min_side, self.feedback.blur_threshold
        return self.min_side, self.blur_threshold


# ------------------------------------------------------------------------------------------------- decoding


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded Pillow image as 8-bit RGB: full range kept for 16/32-bit, transparency on neutral grey."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image)
        if mode == "F":
            scaled = np.clip(array, 0, 255)
        elif array.size and (mode.startswith("I;16") or int(array.max()) > 255):
            scaled = np.clip(array, 0, 65535).astype(np.float64) / 257.0  # 16-bit range onto 0..255
        else:
            scaled = array
        return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "P":
        return image.convert("RGB")
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*NEUTRAL_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK (Adobe-inverted handled by Pillow), YCbCr, LAB, HSV


def decode_rgb(data: bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Fully decode image bytes, apply the EXIF orientation and convert to 8-bit RGB; raises if undecodable.

    Raises :class:`DecompressionBomb` (before decoding anything) when the header declares more than
    ``max_pixels`` pixels, or when Pillow's own limit fires. Shared with packing and the attribute model so that
    training sees images decoded exactly as the quality filter accepted them.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise DecompressionBomb(
                    f"{image.width}x{image.height} = {image.width * image.height:,} pixels > limit {max_pixels:,}"
                )
            image.load()  # header-only opens succeed on truncated files; a full load is the real test
            return _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:
        raise DecompressionBomb(str(error)) from error


def is_grayscale(rgb: np.ndarray) -> bool:
    """Whether an H×W×3 uint8 image carries no colour (channels equal up to JPEG chroma noise)."""
    small = rgb[:: max(1, rgb.shape[0] // 64), :: max(1, rgb.shape[1] // 64)].astype(np.int16)
    spread = np.abs(small[..., 0] - small[..., 1]).max(initial=0), np.abs(small[..., 1] - small[..., 2]).max(initial=0)
    return max(spread) <= _GRAY_TOLERANCE


def blur_score(image: Image.Image | np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grayscale image (0-255 scale); low means blurry.

    Same kernel as OpenCV's ``Laplacian(ksize=1)``, border pixels excluded. NaN for images under 3×3.
    The score depends on resolution, so thresholds are per data set (see configs).
    Accepts a PIL image or a uint8 grayscale H×W array.
    """
    gray = np.asarray(image.convert("L")) if isinstance(image, Image.Image) else np.asarray(image)
    if min(gray.shape) < 3:
        return math.nan
    laplacian = cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=1)[1:-1, 1:-1]
    return float(laplacian.astype(np.float64).var())


# ------------------------------------------------------------------------------------------------- per image


def _outcome(status: str, reason: str | None = None, detail: str | None = None, **facts: Any) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "detail": detail,
        "blur_score": math.nan,
        "grayscale": None,
        "face_score": math.nan,
        "phash": None,
        "decoded_pixels": 0,
        **facts,
    }


def _assess(uri: str, origin: str, config: QualityConfig, detector: FaceDetector | None) -> dict[str, Any]:
    # Reading is outside the try: a storage failure (after the source's retries) fails the run naming the URI,
    # rather than passing off an outage as bad images.
    data = read_entry(uri)
    try:
        image = decode_rgb(data, max_pixels=config.max_pixels)
    except DecompressionBomb as error:
        return _outcome("quarantined", "decompression_bomb", str(error))
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad input; all mean "undecodable"
        return _outcome("quarantined", "undecodable", f"{type(error).__name__}: {error}")
    rgb = np.asarray(image)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    facts: dict[str, Any] = {
        "blur_score": blur_score(gray),
        "grayscale": is_grayscale(rgb),
        "phash": phash_hex(gray),
        "decoded_pixels": image.width * image.height,
    }
    min_side, blur_threshold = config.size_and_blur(origin)
    of = f" ({origin} threshold)" if origin == FEEDBACK_ORIGIN else ""
    if min(image.size) < min_side:
        return _outcome("quarantined", "too_small", f"{image.width}x{image.height} < {min_side}{of}", **facts)
    if facts["grayscale"] and config.grayscale == "drop":
        return _outcome("quarantined", "grayscale", "no colour (grayscale: drop)", **facts)
    if not facts["blur_score"] >= blur_threshold:  # NaN counts as blurry
        detail = f"blur score {facts['blur_score']:.1f} < {blur_threshold}{of}"
        return _outcome("quarantined", "blurry", detail, **facts)
    if detector is not None:
        facts["face_score"] = detector.face_score(gray)
        if facts["face_score"] < detector.check.min_face_score:
            detail = f"face score {facts['face_score']:.0f} < {detector.check.min_face_score}"
            return _outcome("quarantined", "no_face", detail, **facts)
    return _outcome("kept", **facts)


def _assess_many(rows: list[tuple[str, str]], *, config: QualityConfig) -> list[dict[str, Any]]:
    # One detector per chunk: OpenCV cascades are not safe to share between threads.
    detector = FaceDetector(config.face_check) if config.face_check is not None else None
    return [_assess(uri, origin, config, detector) for uri, origin in rows]


def assess_quality(
    manifest: pd.DataFrame,
    *,
    config: QualityConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """The manifest's rows, same count and order, with ``status``, ``reason``, ``detail`` and the quality columns.

    ``config`` holds every threshold (the default config has no face check). Rows already quarantined (e.g.
    ``unsafe_path`` at ingest) keep their reason. Of byte-identical rows the first in manifest order is assessed and the others become
    ``duplicate_sha256``, detail naming the first; near-duplicates among kept images are resolved last.
    """
    config = config or QualityConfig()
    n = len(manifest)
    # Work on positional column arrays: robust to any index the caller's frame has, and fast to fill.
    columns: dict[str, np.ndarray] = {
        "status": manifest["status"].to_numpy(dtype=object, copy=True),
        "reason": manifest["reason"].to_numpy(dtype=object, copy=True),
        "detail": manifest.get("detail", pd.Series(None, index=manifest.index)).to_numpy(dtype=object, copy=True),
        "blur_score": np.full(n, math.nan),
        "grayscale": np.full(n, None, dtype=object),
        "face_score": np.full(n, math.nan),
        "phash": np.full(n, None, dtype=object),
    }
    pixels = np.zeros(n, dtype=np.int64)
    uris = manifest["uri"].tolist()
    origins = manifest["origin"].tolist() if "origin" in manifest else [SOURCE_ORIGIN] * n
    first_by_sha: dict[str, int] = {}
    to_decode: list[int] = []
    duplicate_of: dict[int, int] = {}
    for position, (status, sha) in enumerate(zip(columns["status"], manifest["sha256"])):
        if status == "quarantined":
            continue
        if sha in first_by_sha:
            duplicate_of[position] = first_by_sha[sha]
        else:
            first_by_sha[sha] = position
            to_decode.append(position)

    # Chunks keep per-task overhead (futures, GIL hand-offs) small next to ~3 ms of work per face.
    chunks = [to_decode[start : start + _CHUNK] for start in range(0, len(to_decode), _CHUNK)]
    assess_chunk = partial(_assess_many, config=config)
    work = [[(uris[p], origins[p]) for p in chunk] for chunk in chunks]
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(to_decode), desc="quality", disable=not progress) as bar,
    ):
        for chunk, outcomes in zip(chunks, pool.map(assess_chunk, work)):
            for position, outcome in zip(chunk, outcomes):
                pixels[position] = outcome.pop("decoded_pixels")
                for column, value in outcome.items():
                    columns[column][position] = value
            bar.update(len(chunk))
    for position, first in duplicate_of.items():
        columns["status"][position] = "quarantined"
        columns["reason"][position] = "duplicate_sha256"
        columns["detail"][position] = f"duplicate of {uris[first]}"
        for column in ("blur_score", "grayscale", "face_score", "phash"):
            columns[column][position] = columns[column][first]

    if config.near_duplicate_distance is not None:
        kept = np.flatnonzero(columns["status"] == "kept")
        # Representative: most pixels, then sharpest, then first in manifest order.
        preference = sorted(kept, key=lambda p: (-pixels[p], -np.nan_to_num(columns["blur_score"][p]), p))
        thumbs: dict[int, np.ndarray] = {}

        def thumb(position: int) -> np.ndarray:
            if position not in thumbs:
                gray = cv2.cvtColor(np.asarray(decode_rgb(read_entry(uris[position]))), cv2.COLOR_RGB2GRAY)
                thumbs[position] = thumbnail(gray)
            return thumbs[position]

        def confirm(i: int, j: int) -> bool:
            a, b = thumb(preference[i]), thumb(preference[j])
            return thumbnail_correlation(a, b) >= config.near_duplicate_min_correlation

        hashes = [columns["phash"][p] for p in preference]
        groups = group_near_duplicates(hashes, config.near_duplicate_distance, confirm=confirm)
        for members in groups:
            keeper = preference[members[0]]
            for member in members[1:]:
                position = preference[member]
                distance = _hamming(columns["phash"][position], columns["phash"][keeper])
                columns["status"][position] = "quarantined"
                columns["reason"][position] = "near_duplicate"
                correlation = thumbnail_correlation(thumb(keeper), thumb(position))
                columns["detail"][position] = (
                    f"near duplicate of {uris[keeper]} (pHash distance {distance}, correlation {correlation:.3f})"
                )

    columns["face_score"] = columns["face_score"].astype(np.float64)
    result = manifest.assign(**columns)
    n_kept = int(result["status"].eq("kept").sum())
    n_quarantined = int(result["status"].eq("quarantined").sum())
    if n_kept + n_quarantined != n:
        raise AssertionError(f"quality filter lost rows: {n_kept} kept + {n_quarantined} quarantined != {n}")
    return result


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def quarantine_summary(assessed: pd.DataFrame) -> dict[str, int]:
    """Quarantined row count per reason: every known reason (zeros included), then any unknown ones."""
    counts = assessed.loc[assessed["status"].eq("quarantined"), "reason"].value_counts()
    summary = {reason: int(counts.get(reason, 0)) for reason in QUARANTINE_REASONS}
    summary.update({str(reason): int(n) for reason, n in counts.items() if reason not in summary})
    return summary


def origin_summary(assessed: pd.DataFrame) -> dict[str, int]:
    """Ingested and kept rows per origin (photos and feedback faces, zeros included): ``ingested_feedback``, …"""
    summary: dict[str, int] = {}
    for origin in (SOURCE_ORIGIN, FEEDBACK_ORIGIN):
        rows = assessed["origin"].eq(origin)
        summary[f"ingested_{origin}"] = int(rows.sum())
        summary[f"kept_{origin}"] = int((rows & assessed["status"].eq("kept")).sum())
    return summary
