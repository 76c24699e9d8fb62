"""Evaluating a trained generator: its faces drawn under an evaluation protocol, one Inception feature pass over them,
then the registered metrics :data:`EVALUATION_METRICS` (:mod:`facegen.metrics.registry`) on those faces and features.

The faces and features are kept in the :class:`Evaluation`, so the champion comparison reuses them instead of
drawing again, and the protocol says what the figures were measured under (:mod:`facegen.metrics.comparison`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegen.metrics.comparison import EvaluationProtocol, protocol_features
from facegen.metrics.features import RealFeatures
from facegen.metrics.registry import MetricInputs, MetricResult, calc_metric
from facegen.metrics.samples import EvaluationSample
from facegen.models.conditioning import UNKNOWN

#: What the evaluate step reports, in this order (fid_inf next to fidelity's FID at N: the one gates compare).
EVALUATION_METRICS = ("fidelity", "fid_inf", "inception_score", "memorisation", "latency")


@dataclass(frozen=True)
class Evaluation:
    """The scored faces, their features, the protocol they were drawn under and each metric's result."""

    protocol: EvaluationProtocol
    sample: EvaluationSample
    features: np.ndarray
    results: dict[str, MetricResult]

    @property
    def values(self) -> dict[str, float]:
        """Every metric's values under their MLflow names (the names are distinct across metrics)."""
        return {key: value for result in self.results.values() for key, value in result.values.items()}

    @property
    def tags(self) -> dict[str, str]:
        """Every metric's tags (which IS network, which latency device)."""
        return {key: value for result in self.results.values() for key, value in result.tags.items()}


def evaluate_generator(
    generator: nn.Module,
    real: RealFeatures,
    *,
    weights_path: Path,
    targets: Mapping[str, Mapping[str, float]],
    num_generated: int,
    seed: int,
    kid_subset_size: int,
    kid_subsets: int,
    prc_neighborhood: int,
    is_splits: int,
    near_copy_quantile: float,
    latency_repeats: int,
    device: str | torch.device,
    progress: bool = False,
) -> Evaluation:
    """``num_generated`` faces from seeds ``seed …`` (labels stratified over ``targets``) scored by every metric.

    Latency is timed for "any face": every conditioned attribute left unknown.
    """
    protocol = EvaluationProtocol.for_generator(
        generator,
        real,
        num_generated=num_generated,
        seed=seed,
        targets=targets,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
    )
    sample, features = protocol_features(
        generator, protocol, weights_path=weights_path, device=device, progress=progress
    )
    inputs = MetricInputs(generator, sample.faces, features, real.features, device)
    any_face = np.full(len(generator.label_dims), UNKNOWN) if generator.label_dims else None
    options = {
        "fidelity": {
            "kid_subset_size": kid_subset_size,
            "kid_subsets": kid_subsets,
            "prc_neighborhood": prc_neighborhood,
        },
        "fid_inf": {},
        "inception_score": {"splits": is_splits},
        "memorisation": {"quantile": near_copy_quantile},
        "latency": {"repeats": latency_repeats, "labels": any_face},
    }
    results = {name: calc_metric(name, inputs, **options[name]) for name in EVALUATION_METRICS}
    return Evaluation(protocol, sample, features, results)
