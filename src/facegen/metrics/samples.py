"""The generated faces every evaluation scores: a range of seeds and, for a conditional generator, labels requested
stratified over the balancing target (each attribute cell exactly its target share), so fidelity and fairness judge
the distribution the model was trained toward and a perfect model is not failed by the luck of the draw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.metrics.fairness import stratified_requests
from facegen.models.sampling import base_seeds, faces_from_seeds


def balance_targets(balance_shares: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Attribute → group → target share, from the balance step's shares (its joint ``cells`` entry left out)."""
    return {
        attribute: {group: float(values["target_share"]) for group, values in groups.items()}
        for attribute, groups in balance_shares.items()
        if attribute in ATTRIBUTE_VALUES
    }


@dataclass(frozen=True)
class EvaluationSample:
    """Generated faces with what made them: face i is ``faces_from_seeds(G, [seeds[i]], labels=labels[i])``."""

    faces: np.ndarray  # uint8 N×3×H×W
    seeds: list[int]
    labels: np.ndarray | None  # N×K label indices (``label_dims`` order), None for an unconditional generator
    requested: dict[str, np.ndarray] | None  # attribute → requested group name per face


def evaluation_faces(
    generator: nn.Module,
    n: int,
    *,
    seed: int,
    targets: Mapping[str, Mapping[str, float]],
    device: str | torch.device = "cpu",
) -> EvaluationSample:
    """``n`` faces from seeds ``seed … seed + n − 1``; a conditional generator is asked for stratified labels."""
    seeds = base_seeds(seed, n)
    if not generator.label_dims:
        return EvaluationSample(faces_from_seeds(generator, seeds, device=device), seeds, None, None)
    labels, requested = stratified_requests(generator.label_dims, targets, n, seed)
    return EvaluationSample(faces_from_seeds(generator, seeds, labels=labels, device=device), seeds, labels, requested)
