"""The one place a face is marked before it leaves facegen: watermark (faces of 256² or more), encode, sign.

The service's ``/generate``, the feedback export and the human-evaluation pages all encode faces through
:class:`FaceMarker`. It fails closed: with marking enabled and no usable signing credentials it refuses
(:class:`MarkingUnavailable`) instead of returning an unmarked face; with marking switched off in configuration it
encodes plainly.
"""

from __future__ import annotations

import logging

import numpy as np

from facegen.provenance.c2pa_manifest import FaceProvenance, ManifestSigner
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


class MarkingUnavailable(RuntimeError):
    """Faces cannot be marked (missing or expired signing credentials), so none may be handed out."""


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
            self._signer = ManifestSigner(SigningCredentials.load(config.resolved_credentials_dir()))
        except CredentialsError as error:
            self._load_error = str(error)
            logger.error("no face can be marked, so none will be served or exported: %s", error)

    def problem(self) -> str | None:
        """Why no face may leave now (credentials missing, bad or expired); None when marking works or is off."""
        if self._signer is None:
            return self._load_error
        return self._signer.credentials.problem()

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
        problem = self.problem()
        if problem is not None:
            raise MarkingUnavailable(problem)
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
