"""Quality filter: decide per manifest row whether an image is kept for training or quarantined, and why.

Nothing is ever dropped: every row comes back as ``kept`` or ``quarantined`` with a ``reason`` from
:data:`QUARANTINE_REASONS`, so data checks and reports can account for every ingested file.
Checks, first failure wins: ``undecodable`` (full decode, the PIL error in ``detail``), ``too_small``
(shorter side below ``min_side``), ``blurry`` (variance of the Laplacian below ``blur_threshold``).
Byte-identical copies of an earlier row are ``duplicate_sha256`` without being decoded again.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from facegen.data.sources import read_entry

QUARANTINE_REASONS: tuple[str, ...] = ("unsafe_path", "undecodable", "too_small", "blurry", "duplicate_sha256")

_CHUNK = 64


def decode_rgb(data: bytes) -> Image.Image:
    """Fully decode image bytes, apply the EXIF orientation and convert to RGB; raises if undecodable.

    Shared with packing so that training sees images decoded exactly as the quality filter accepted them.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # header-only opens succeed on truncated files; a full load is the real test
        return ImageOps.exif_transpose(image).convert("RGB")


def blur_score(image: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of the grayscale image (0-255 scale); low means blurry.

    Same kernel as OpenCV's ``Laplacian(ksize=1)``, border pixels excluded. NaN for images under 3×3.
    The score depends on resolution, so thresholds are per data set (see configs).
    """
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    if min(gray.shape) < 3:
        return math.nan
    centre = gray[1:-1, 1:-1]
    laplacian = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * centre
    return float(laplacian.var(dtype=np.float64))


def _assess(uri: str, min_side: int, blur_threshold: float) -> dict[str, Any]:
    try:
        image = decode_rgb(read_entry(uri))
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad input; all mean "undecodable"
        return {"status": "quarantined", "reason": "undecodable", "detail": f"{type(error).__name__}: {error}",
                "blur_score": math.nan}  # fmt: skip
    score = blur_score(image)
    if min(image.size) < min_side:
        return {"status": "quarantined", "reason": "too_small", "detail": f"{image.width}x{image.height} < {min_side}",
                "blur_score": score}  # fmt: skip
    if not score >= blur_threshold:  # NaN counts as blurry
        return {"status": "quarantined", "reason": "blurry", "detail": f"blur score {score:.1f} < {blur_threshold}",
                "blur_score": score}  # fmt: skip
    return {"status": "kept", "reason": None, "detail": None, "blur_score": score}


def _assess_many(uris: list[str], *, min_side: int, blur_threshold: float) -> list[dict[str, Any]]:
    return [_assess(uri, min_side, blur_threshold) for uri in uris]


def assess_quality(
    manifest: pd.DataFrame,
    *,
    min_side: int,
    blur_threshold: float,
    workers: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """The manifest's rows, same count and order, with ``status``, ``reason``, ``detail`` and ``blur_score`` set.

    Rows already quarantined (e.g. ``unsafe_path`` at ingest) keep their reason. Of byte-identical rows the
    first in manifest order is assessed and the others become ``duplicate_sha256``, detail naming the first.
    """
    if min_side < 1:
        raise ValueError(f"min_side must be >= 1, got {min_side}")
    if blur_threshold < 0:
        raise ValueError(f"blur_threshold must be >= 0, got {blur_threshold}")
    # Work on positional column arrays: robust to any index the caller's frame has, and fast to fill.
    columns = {
        "status": manifest["status"].to_numpy(dtype=object, copy=True),
        "reason": manifest["reason"].to_numpy(dtype=object, copy=True),
        "detail": manifest.get("detail", pd.Series(None, index=manifest.index)).to_numpy(dtype=object, copy=True),
        "blur_score": np.full(len(manifest), math.nan),
    }
    uris = manifest["uri"].tolist()
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

    # Chunks keep per-task overhead (futures, GIL hand-offs) small next to ~0.5 ms of decoding per face.
    chunks = [to_decode[start : start + _CHUNK] for start in range(0, len(to_decode), _CHUNK)]
    assess_chunk = partial(_assess_many, min_side=min_side, blur_threshold=blur_threshold)
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(to_decode), desc="quality", disable=not progress) as bar,
    ):
        for chunk, outcomes in zip(chunks, pool.map(assess_chunk, [[uris[p] for p in chunk] for chunk in chunks])):
            for position, outcome in zip(chunk, outcomes):
                for column, value in outcome.items():
                    columns[column][position] = value
            bar.update(len(chunk))
    for position, first in duplicate_of.items():
        columns["status"][position] = "quarantined"
        columns["reason"][position] = "duplicate_sha256"
        columns["detail"][position] = f"duplicate of {uris[first]}"
        columns["blur_score"][position] = columns["blur_score"][first]
    result = manifest.assign(**columns)

    n_kept = int(result["status"].eq("kept").sum())
    n_quarantined = int(result["status"].eq("quarantined").sum())
    if n_kept + n_quarantined != len(manifest):
        raise AssertionError(f"quality filter lost rows: {n_kept} kept + {n_quarantined} quarantined != {len(result)}")
    return result


def quarantine_summary(assessed: pd.DataFrame) -> dict[str, int]:
    """Quarantined row count per reason: every known reason (zeros included), then any unknown ones."""
    counts = assessed.loc[assessed["status"].eq("quarantined"), "reason"].value_counts()
    summary = {reason: int(counts.get(reason, 0)) for reason in QUARANTINE_REASONS}
    summary.update({str(reason): int(n) for reason, n in counts.items() if reason not in summary})
    return summary
