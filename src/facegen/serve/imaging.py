"""From a generated uint8 face to the bytes a client receives: resize to the requested side, encode JPEG or PNG.

Measured on the 2-core Xeon (see docs/benchmarks.md): Pillow (libjpeg-turbo) encodes a 256×256 JPEG in ~0.3 ms and
resizes 32→256 bicubic + encodes in ~0.7 ms, while ``torchvision.io.encode_jpeg`` takes ~1.6 ms and torch's
``F.interpolate(antialias=True)`` ~2.5 ms for the same resize; PNG is 5-90× slower than JPEG (zlib; depends on size
and content), at 1024 with zlib level 6 from ~46 ms for an enlarged face to ~320 ms for noise-like content, so the
service defaults to JPEG and to zlib level 1 for PNG. Pillow releases the GIL while it resizes and encodes, so encodes
of concurrent requests run in parallel threads.

Resampling: Lanczos when shrinking (antialiased), bicubic when enlarging (a generator's 32×32 face shown at 256).
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

ImageFormat = Literal["jpeg", "png"]  # both carry a C2PA manifest (JUMBF in APP11 / a caBX chunk)
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png"}
#: Encoder defaults of the library functions (the service takes its own from its settings).
JPEG_QUALITY = 90
PNG_COMPRESS_LEVEL = 1


def resize_face(face: np.ndarray, size: int) -> Image.Image:
    """``face`` (uint8 H×W×3) as a PIL image of side ``size``."""
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"expected a uint8 H×W×3 face, got {face.dtype} {face.shape}")
    image = Image.fromarray(face)
    if image.size != (size, size):
        resample = Image.Resampling.LANCZOS if size < image.size[0] else Image.Resampling.BICUBIC
        image = image.resize((size, size), resample)
    return image


def encode_face(
    face: np.ndarray,
    *,
    size: int,
    fmt: ImageFormat = "jpeg",
    jpeg_quality: int = JPEG_QUALITY,
    png_compress_level: int = PNG_COMPRESS_LEVEL,
) -> bytes:
    """Resize ``face`` (uint8 H×W×3) to ``size``×``size`` and encode it, unmarked; deterministic for equal inputs."""
    return encode_image(
        resize_face(face, size), fmt=fmt, jpeg_quality=jpeg_quality, png_compress_level=png_compress_level
    )


def encode_image(
    image: Image.Image | np.ndarray,
    *,
    fmt: ImageFormat,
    jpeg_quality: int = JPEG_QUALITY,
    png_compress_level: int = PNG_COMPRESS_LEVEL,
) -> bytes:
    """Encode an RGB image as it is (no resize): the watermark goes in between resizing and encoding."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    if fmt == "jpeg":
        # 4:2:0 subsampling (Pillow's default at quality < 95) and no optimize pass: the fast libjpeg-turbo path.
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    elif fmt == "png":
        image.save(buffer, format="PNG", compress_level=png_compress_level)
    else:
        raise ValueError(f"unknown image format {fmt!r}; choose one of {sorted(MEDIA_TYPES)}")
    return buffer.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to uint8 H×W×3 (tests, feedback export)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
