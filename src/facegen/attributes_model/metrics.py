"""Per-attribute accuracy, balanced accuracy (mean recall over the classes present) and confusion matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from facegen.attributes_model.data import MISSING
from facegen.attributes_model.network import HEADS


def confusion(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts[true, predicted] over rows whose truth is known."""
    known = truth != MISSING
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth[known], predicted[known]), 1)
    return matrix


def scores_from_confusion(matrix: np.ndarray) -> dict[str, float]:
    total = matrix.sum()
    support = matrix.sum(axis=1)
    present = support > 0
    recalls = np.diag(matrix)[present] / support[present]
    return {
        "accuracy": float(np.trace(matrix) / total) if total else float("nan"),
        "balanced_accuracy": float(recalls.mean()) if present.any() else float("nan"),
        "n": int(total),
    }


def evaluate_predictions(truth: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{head: {accuracy, balanced_accuracy, n, classes, confusion}}`` for every head with labels."""
    report: dict[str, Any] = {}
    for name, classes in HEADS.items():
        matrix = confusion(truth[name], predicted[name], len(classes))
        report[name] = {**scores_from_confusion(matrix), "classes": list(classes), "confusion": matrix.tolist()}
    return report


def flat_metrics(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{gender_accuracy: …, gender_balanced_accuracy: …, …}`` for MLflow."""
    return {
        f"{prefix}{name}_{key}": float(values[key])
        for name, values in report.items()
        for key in ("accuracy", "balanced_accuracy")
    }


def plot_confusions(report: dict[str, Any]):  # -> matplotlib Figure
    """One row-normalised confusion matrix per head, counts annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = [name for name in report if report[name]["n"]]
    figure, axes = plt.subplots(1, len(heads), figsize=(5.5 * len(heads), 5), squeeze=False)
    for axis, name in zip(axes[0], heads):
        matrix = np.asarray(report[name]["confusion"], dtype=float)
        normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        classes = report[name]["classes"]
        axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axis.set_yticks(range(len(classes)), classes)
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            axis.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=7, color=colour)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"{name}: acc {report[name]['accuracy']:.3f}, bal. acc {report[name]['balanced_accuracy']:.3f}")
    figure.tight_layout()
    return figure
