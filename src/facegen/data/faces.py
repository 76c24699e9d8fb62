"""An offline ML face check: OpenCV's Haar cascade (shipped in ``opencv-python-headless``) on each image.

Aligned face crops (UTKFace, FFHQ, CelebA-aligned) fill most of the frame, and a cascade misses faces that touch the
border, so the grey image is shrunk to ``detect_size`` pixels and padded by ``border`` (a fraction of the side,
replicated edge pixels) on every side before detection. Only windows between ``min_face`` and ``max_face`` of the
shrunk side are searched, which keeps the check at ~2 ms a face on one CPU core.

``face_score`` is the largest number of raw detections merged into one face (OpenCV's ``numDetections``): 0 means
no face at all; real faces in UTKFace score ~5-25; a threshold of 3 (OpenCV's usual ``minNeighbors``) kept 98 % of
UTKFace and none of 100 noise images in our measurements (see docs/data.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CASCADES: tuple[str, ...] = (
    "haarcascade_frontalface_alt2.xml",
    "haarcascade_frontalface_default.xml",
    "haarcascade_frontalface_alt.xml",
)


@dataclass(frozen=True)
class FaceCheck:
    """Settings of the face check (``quality_filter.face_check`` in the configs)."""

    cascade: str = "haarcascade_frontalface_alt2.xml"
    detect_size: int = 48  # shrink the image to this many pixels a side before detecting
    border: float = 0.2  # padding on each side, as a fraction of detect_size
    scale_factor: float = 1.1
    min_face: float = 0.5  # smallest window searched, as a fraction of detect_size
    max_face: float = 1.3
    min_face_score: int = 3  # merged detections needed to count as a face

    def __post_init__(self) -> None:
        if self.cascade not in CASCADES:
            raise ValueError(f"unknown cascade {self.cascade!r}; expected one of {CASCADES}")
        if self.detect_size < 24 or not 0 <= self.border <= 1 or self.scale_factor <= 1:
            raise ValueError(f"bad face check settings: {self}")
        if not 0 < self.min_face < self.max_face:
            raise ValueError(f"need 0 < min_face < max_face, got {self.min_face}, {self.max_face}")


class FaceDetector:
    """One cascade instance (not thread-safe: make one per thread)."""

    def __init__(self, check: FaceCheck | None = None) -> None:
        self.check = check or FaceCheck()
        path = cv2.data.haarcascades + self.check.cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FileNotFoundError(f"could not load the Haar cascade {path}")
        size = self.check.detect_size
        self._pad = int(round(self.check.border * size))
        self._min = max(20, int(self.check.min_face * size))
        self._max = int(self.check.max_face * size)

    def face_score(self, gray: np.ndarray) -> float:
        """Merged detections of the strongest face in a uint8 grey H×W image (0.0: no face)."""
        size = self.check.detect_size
        small = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
        padded = cv2.copyMakeBorder(small, *(self._pad,) * 4, cv2.BORDER_REPLICATE)
        _rects, counts = self._cascade.detectMultiScale2(
            padded,
            scaleFactor=self.check.scale_factor,
            minNeighbors=1,
            minSize=(self._min, self._min),
            maxSize=(self._max, self._max),
        )
        return float(np.max(counts)) if len(counts) else 0.0
