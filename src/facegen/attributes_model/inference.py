"""Inference on tensors or files, manifest tagging and the label audit.

:class:`AttributeClassifier` takes images as they come: torch tensors or numpy arrays, uint8 (0..255) or float in
[0, 1] (pass ``value_range=(-1, 1)`` for a generator's raw output), channels first (N×3×H×W) or last (N×H×W×3),
any size (resized to the model's input with antialiasing); or image files / entry URIs (decoded exactly as the
quality filter decodes them). So the same model tags training data and scores generated faces for fairness metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from facegen.attributes import AGE_BINS
from facegen.attributes_model.bundle import load_bundle
from facegen.attributes_model.data import pack_faces
from facegen.attributes_model.network import HEADS, AttributeNet


@dataclass
class AttributePredictions:
    """Per head: probabilities (N×classes), predicted class names and their probability (confidence)."""

    probabilities: dict[str, np.ndarray]

    @property
    def labels(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(HEADS[name], dtype=object)[p.argmax(1)] for name, p in self.probabilities.items()}

    @property
    def confidences(self) -> dict[str, np.ndarray]:
        return {name: p.max(1) for name, p in self.probabilities.items()}

    def to_frame(self) -> pd.DataFrame:
        """Columns ``predicted_<head>`` and ``confidence_<head>`` for every head."""
        columns: dict[str, Any] = {}
        for name in HEADS:
            columns[f"predicted_{name}"] = self.labels[name]
            columns[f"confidence_{name}"] = self.confidences[name].astype(np.float64)
        return pd.DataFrame(columns)


class AttributeClassifier:
    """A loaded ``facegen-attributes`` model. Thread-compatible for inference (no per-call state)."""

    def __init__(self, model: AttributeNet, spec: dict[str, Any], device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.spec = spec
        self.input_size = int(spec["input_size"])

    @classmethod
    def from_bundle(cls, directory: Path | str, device: str = "cpu") -> AttributeClassifier:
        model, spec = load_bundle(Path(directory), device=device)
        return cls(model, spec, device)

    def _prepare(self, images: Any, value_range: tuple[float, float]) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if tensor.ndim == 3:
            tensor = tensor.unsqueeze(0)
        if tensor.ndim != 4:
            raise ValueError(f"expected N×3×H×W or N×H×W×3 images, got shape {tuple(tensor.shape)}")
        if tensor.shape[1] != 3 and tensor.shape[-1] == 3:
            tensor = tensor.permute(0, 3, 1, 2)
        if tensor.shape[1] != 3:
            raise ValueError(f"expected 3 colour channels, got shape {tuple(tensor.shape)}")
        if tensor.dtype == torch.uint8:
            unit = tensor.to(torch.float32) / 255.0
        elif tensor.is_floating_point():
            low, high = value_range
            unit = ((tensor.to(torch.float32) - low) / (high - low)).clamp(0.0, 1.0)
        else:
            raise TypeError(f"expected uint8 or float images, got {tensor.dtype}")
        if unit.shape[-2:] != (self.input_size, self.input_size):
            unit = F.interpolate(
                unit, size=(self.input_size, self.input_size), mode="bilinear", antialias=True, align_corners=False
            )
        return unit.contiguous()

    @torch.inference_mode()
    def predict(
        self, images: Any, *, value_range: tuple[float, float] = (0.0, 1.0), batch_size: int = 256
    ) -> AttributePredictions:
        """Predictions for a batch of images (see the module doc for the accepted layouts and types)."""
        unit = self._prepare(images, value_range)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in HEADS}
        for start in range(0, len(unit), batch_size):
            logits = self.model(unit[start : start + batch_size].to(self.device))
            for name in HEADS:
                parts[name].append(torch.softmax(logits[name].float(), dim=1).cpu().numpy())
        return AttributePredictions(
            {name: np.concatenate(p) if p else np.zeros((0, len(HEADS[name])), np.float32) for name, p in parts.items()}
        )

    def predict_files(self, uris: Sequence[str | Path], *, workers: int = 2, batch_size: int = 256):
        """Predictions for image files or entry URIs (folder paths, ``zip://…!/member``, ``s3://…``)."""
        packed = pack_faces([str(uri) for uri in uris], self.input_size, workers=workers)
        return self.predict(packed, batch_size=batch_size)


# ------------------------------------------------------------------------------------------------- tagging


def _age_distance(a: str, b: str) -> int:
    return abs(AGE_BINS.index(a) - AGE_BINS.index(b))


def tag_frame(
    frame: pd.DataFrame,
    predictions: AttributePredictions,
    *,
    min_confidence: float = 0.8,
    audit_confidence: float = 0.9,
    audit_min_age_bins: int = 2,
) -> pd.DataFrame:
    """``frame`` (rows aligned with ``predictions``) with predictions, resolved attributes and the label audit.

    Adds per head ``predicted_<h>``, ``confidence_<h>``, ``attr_<h>`` (the label when present, else the prediction
    when its confidence reaches ``min_confidence``, else null) and ``attr_<h>_source`` (label / predicted / null);
    ``attribute_confidence`` (geometric mean of the three heads' confidences: a learned "how face-like and how
    clear" score, low for odd crops) and ``label_audit`` (e.g. ``"gender: label male, predicted female (0.97)"``)
    for labelled rows whose label the model contradicts with at least ``audit_confidence`` (for age, only when the
    bins are at least ``audit_min_age_bins`` apart: neighbouring bins are a matter of a year).
    """
    if len(frame) != len(predictions.probabilities["gender"]):
        raise ValueError(f"{len(frame)} rows but {len(predictions.probabilities['gender'])} predictions")
    tagged = frame.reset_index(drop=True).copy()
    predicted = predictions.to_frame()
    audits: list[list[str]] = [[] for _ in range(len(tagged))]
    confidences = []
    for name in HEADS:
        labels_pred = predicted[f"predicted_{name}"]
        conf = predicted[f"confidence_{name}"]
        confidences.append(np.log(np.clip(conf.to_numpy(), 1e-6, 1.0)))
        tagged[f"predicted_{name}"] = labels_pred.to_numpy()
        tagged[f"confidence_{name}"] = conf.to_numpy()
        label = tagged[name] if name in tagged else pd.Series(None, index=tagged.index, dtype=object)
        has_label = label.notna().to_numpy()
        confident = (conf >= min_confidence).to_numpy()
        tagged[f"attr_{name}"] = np.where(
            has_label, label.to_numpy(dtype=object), np.where(confident, labels_pred.to_numpy(dtype=object), None)
        )
        tagged[f"attr_{name}_source"] = np.where(has_label, "label", np.where(confident, "predicted", None))
        for i in np.flatnonzero(has_label & (conf >= audit_confidence).to_numpy()):
            truth, guess = label.iloc[i], labels_pred.iloc[i]
            if truth == guess or (name == "age_bin" and _age_distance(truth, guess) < audit_min_age_bins):
                continue
            audits[i].append(f"{name}: label {truth}, predicted {guess} ({conf.iloc[i]:.2f})")
    tagged["attribute_confidence"] = np.exp(np.mean(confidences, axis=0)) if len(tagged) else np.zeros(0)
    tagged["label_audit"] = ["; ".join(a) if a else None for a in audits]
    return tagged
