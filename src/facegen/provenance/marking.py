"""The one place a face is marked before it leaves facegen: watermark (faces of 256² or more), encode, sign.

The service's ``/generate``, the feedback export and the human-evaluation pages all encode faces through
:class:`FaceMarker`. It fails closed: with marking enabled and no usable signing credentials it refuses
(:class:`MarkingUnavailable`) instead of returning an unmarked face; with marking switched off in configuration it
encodes plainly.

Grids of faces the pipeline saves into MLflow run artifacts go through :func:`log_marked_grid`: a signed PNG with the
grid's manifest, no watermark. The watermark is read per face (a crop of one cell loses a grid-wide one), its payload
names a registered version and grids are drawn before registration, so for a grid it would identify nothing the
manifest does not already say.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path, PurePosixPath

import mlflow
import numpy as np

from facegen.provenance.c2pa_manifest import FaceProvenance, GridProvenance, ManifestSigner, MarkingUnavailable
from facegen.provenance.credentials import CredentialsError, ProvenanceConfig, SigningCredentials
from facegen.provenance.watermark import MIN_WATERMARK_SIDE, embed_watermark
from facegen.serve.imaging import (
    JPEG_QUALITY,
    MEDIA_TYPES,
    PNG_COMPRESS_LEVEL,
    ImageFormat,
    encode_face,
    encode_image,
    resize_face,
)

logger = logging.getLogger("facegen.provenance")


def mark_face(
    face: np.ndarray,
    provenance: FaceProvenance,
    signer: ManifestSigner,
    *,
    size: int,
    fmt: ImageFormat,
    jpeg_quality: int = JPEG_QUALITY,
    png_compress_level: int = PNG_COMPRESS_LEVEL,
) -> bytes:
    """``face`` (uint8 H×W×3) resized to ``size``, watermarked when ``size`` ≥ 256, encoded and C2PA-signed."""
    image = np.asarray(resize_face(face, size))
    if size >= MIN_WATERMARK_SIDE:
        if provenance.model_run_id is None:
            raise ValueError(f"{provenance.model_name} has no MLflow run id: a {size}² face needs it for its watermark")
        image = embed_watermark(image, provenance.watermark_version, provenance.model_run_id)
    data = encode_image(image, fmt=fmt, jpeg_quality=jpeg_quality, png_compress_level=png_compress_level)
    return signer.sign(data, MEDIA_TYPES[fmt], provenance)


class FaceMarker:
    """Marks faces under one :class:`ProvenanceConfig`; credentials are read once, their expiry checked per face."""

    def __init__(self, config: ProvenanceConfig) -> None:
        self.config = config
        self._signer: ManifestSigner | None = None
        self._load_error: str | None = None
        if not config.enabled:
            logger.warning(
                "PROVENANCE MARKING IS SWITCHED OFF (provenance.enabled: false): faces leave WITHOUT C2PA content "
                "credentials or watermark, unmarked as synthetic (EU AI Act Art. 50(2) asks for both)"
            )
            return
        try:
            credentials = SigningCredentials.load(config.resolved_credentials_dir())
            self._signer = ManifestSigner(credentials, config.timestamp_url)
        except CredentialsError as error:
            self._load_error = str(error)
            logger.error("no face can be marked, so none will be served or exported: %s", error)

    def problem(self) -> str | None:
        """Why no face may leave now (credentials missing, bad or expired); None when marking works or is off."""
        if self._signer is None:
            return self._load_error
        return self._signer.credentials.problem()

    def check(self) -> None:
        """:class:`MarkingUnavailable` now, before work whose faces could not be marked at the end."""
        problem = self.problem()
        if problem is not None:
            raise MarkingUnavailable(problem)

    def encode_grid(self, grid: np.ndarray, provenance: GridProvenance) -> bytes:
        """``grid`` (uint8 H×W×3) as a PNG with its signed manifest (plain when marking is switched off)."""
        if grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[2] != 3:
            raise ValueError(f"expected a uint8 H×W×3 grid, got {grid.dtype} {grid.shape}")
        self.check()
        data = encode_image(grid, fmt="png")
        return data if self._signer is None else self._signer.sign(data, MEDIA_TYPES["png"], provenance)

    def encode(
        self,
        face: np.ndarray,
        provenance: FaceProvenance,
        *,
        size: int,
        fmt: ImageFormat,
        jpeg_quality: int = JPEG_QUALITY,
        png_compress_level: int = PNG_COMPRESS_LEVEL,
    ) -> bytes:
        """The face's bytes, marked (or plain when marking is switched off); :class:`MarkingUnavailable` otherwise."""
        self.check()
        if self._signer is None:
            return encode_face(
                face, size=size, fmt=fmt, jpeg_quality=jpeg_quality, png_compress_level=png_compress_level
            )
        return mark_face(
            face,
            provenance,
            self._signer,
            size=size,
            fmt=fmt,
            jpeg_quality=jpeg_quality,
            png_compress_level=png_compress_level,
        )


def log_marked_grid(grid: np.ndarray, artifact_file: str, provenance: GridProvenance, marker: FaceMarker) -> None:
    """Log ``grid`` (uint8 H×W×3) to the active MLflow run as a signed PNG at ``artifact_file``, where
    ``mlflow.log_image`` would put it (the UI shows it the same); :class:`MarkingUnavailable` logs nothing."""
    path = PurePosixPath(artifact_file)
    if path.suffix != ".png":
        raise ValueError(f"a marked grid is a PNG: {artifact_file!r} must end in .png")
    data = marker.encode_grid(grid, provenance)
    with tempfile.TemporaryDirectory(prefix="facegen-grid-") as folder:
        local = Path(folder) / path.name
        local.write_bytes(data)
        mlflow.log_artifact(str(local), artifact_path=str(path.parent) if str(path.parent) != "." else None)
