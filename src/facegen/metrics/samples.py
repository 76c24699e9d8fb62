"""The generated faces every evaluation scores: seeded, and for a conditional generator asked for labels drawn from
the balancing target, so fidelity and fairness judge the distribution the model was trained toward."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.metrics.fairness import sample_requested_labels
from facegen.models.sampling import generate_images


def balance_targets(balance_shares: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Attribute → group → target share, from the balance step's shares (its joint ``cells`` entry left out)."""
    return {attribute: {group: float(values["target_share"]) for group, values in groups.items()}
            for attribute, groups in balance_shares.items() if attribute in ATTRIBUTE_VALUES}  # fmt: skip


def evaluation_faces(
    generator: nn.Module,
    n: int,
    *,
    seed: int,
    targets: Mapping[str, Mapping[str, float]],
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """``n`` uint8 faces N×3×H×W and, for a conditional generator, attribute → the group requested per face."""
    if not generator.label_dims:
        return generate_images(generator, n, seed=seed, device=device), None
    labels, requested = sample_requested_labels(generator.label_dims, targets, n, seed)
    return generate_images(generator, n, seed=seed, device=device, labels=labels), requested
