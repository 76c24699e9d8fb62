"""The classifier's own accuracy at the generator's resolution: held-out real faces packed at N px (the path the
generator's training faces take), read by the classifier as a generated N px face would be, per attribute.

Kept per resolution and attribute: accuracy, balanced accuracy, the confusion matrix and every held-out face's true
group and predicted probabilities (``held_out``) — what the fairness of generated faces is corrected with
(:mod:`facegen.metrics.fairness_correction`). The accuracies are the ceiling of a conditional generator's
"classified as requested" rate. All of it travels in the bundle's spec (``scored_at``), so a registered version
carries the figures it is judged by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facegen.attributes_model.data import MISSING, pack_faces
from facegen.attributes_model.metrics import evaluate_predictions
from facegen.attributes_model.network import HEADS
from facegen.metrics.fairness_correction import HeldOut

if TYPE_CHECKING:
    from facegen.attributes_model.inference import AttributeClassifier

#: Key of the per-resolution reports in the bundle spec.
SCORED_AT = "scored_at"
#: Generator resolutions the classifier is scored at unless configured otherwise (≥ its input size it reads faces
#: downsampled to the input size, so the largest entry covers every larger generator).
DEFAULT_SCORE_RESOLUTIONS: tuple[int, ...] = (16, 32, 64)


def score_at_resolutions(
    classifier: AttributeClassifier,
    uris: Sequence[str],
    labels: dict[str, np.ndarray],
    resolutions: Sequence[int],
    *,
    workers: int = 2,
) -> dict[str, dict[str, Any]]:
    """``{str(N): {head: {accuracy, balanced_accuracy, n, classes, confusion, held_out}}}`` on the held-out faces
    ``uris``; ``held_out`` holds each labelled face's true group index and predicted probabilities."""
    if not uris:
        raise ValueError("no held-out faces to score the classifier on")
    reports = {}
    for resolution in resolutions:
        images = pack_faces(list(uris), int(resolution), workers=workers)
        probabilities = classifier.predict(images).probabilities
        report = evaluate_predictions(labels, {h: probabilities[h].argmax(1) for h in HEADS})
        for head in HEADS:
            known = labels[head] != MISSING
            report[head]["held_out"] = {
                "truth": labels[head][known].tolist(),
                "probabilities": np.round(probabilities[head][known], 5).ravel().tolist(),
            }
        reports[str(int(resolution))] = report
    return reports


def held_out_at(spec: dict[str, Any], resolution: int, attribute: str, *, model: str) -> HeldOut:
    """The classifier's readings of held-out real faces of ``attribute`` at ``resolution`` (above its input size, at
    the input size: it reads larger faces downsampled); a clear error when it was not scored there (the fix is to
    add the resolution and retrain it)."""
    scored = spec.get(SCORED_AT) or {}
    key = str(int(resolution)) if str(int(resolution)) in scored else str(min(int(resolution), int(spec["input_size"])))
    if key not in scored or "held_out" not in scored[key][attribute]:
        have = sorted(int(r) for r in scored) or "none"
        raise ValueError(
            f"{model} was not scored on held-out faces at {resolution} px (scored at: {have}), so its errors there "
            f"cannot be corrected: add {resolution} to train_attribute_model.parameters.score_resolutions in "
            "configs/attributes.yaml and retrain it (`make attributes`)"
        )
    held_out = HeldOut.from_record(scored[key][attribute]["held_out"])
    assert held_out.probabilities.shape[1] == len(HEADS[attribute]), f"{attribute}: {held_out.probabilities.shape}"
    return held_out
