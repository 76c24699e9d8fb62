"""FID while training: the EMA generator scored every ``fid_every_steps`` against cached real features, so a run
shows FID against training minutes (the quality-per-time curve GPU runs are judged by), not only at the end.

Training minutes exclude the time spent on these evaluations, so curves from runs that evaluate at different
intervals line up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from torch import nn

from facegen.metrics.features import INCEPTION, POOL3, RealFeatures, load_extractor, run_extractor
from facegen.metrics.registry import MetricInputs, calc_metric
from facegen.metrics.samples import evaluation_faces


@dataclass
class TrainingFID:
    """Callable ``fid_fn`` for :func:`facegen.train.loop.train_gan`; keeps the curve it measured."""

    real: RealFeatures
    weights_path: Path
    num_samples: int = 2000  # generated faces per evaluation (FID is biased upward at small N: compare like with like)
    seed: int = 0  # the same latents every time: the curve shows the model changing, not the sample
    targets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # labels for conditional generators
    points: list[dict[str, float]] = field(default_factory=list)
    clock: Callable[[], float] = time.perf_counter  # seconds; training minutes are read from it
    # kid_subset_size, kid_subsets, prc_neighborhood: the points also hold KID and precision/recall of the same faces
    fidelity_options: Mapping[str, int] | None = None
    _started: float = field(init=False)
    _eval_seconds: float = 0.0
    _extractor: nn.Module | None = None  # loaded once, on the generator's device: no weight reads per evaluation

    def __post_init__(self) -> None:
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be at least 2 for a covariance, got {self.num_samples}")
        self._started = self.clock()

    def training_minutes(self) -> float:
        """Minutes on ``clock`` since the tracker was made, less the time its evaluations took."""
        return self._minutes_at(self.clock())

    def _minutes_at(self, now: float) -> float:
        return (now - self._started - self._eval_seconds) / 60.0

    def __call__(self, generator: nn.Module) -> float:
        began = self.clock()
        training_minutes = self._minutes_at(began)
        device = next(generator.parameters()).device
        images = evaluation_faces(
            generator, self.num_samples, seed=self.seed, targets=self.targets, device=device
        ).faces
        if self._extractor is None:
            self._extractor = load_extractor(
                INCEPTION, POOL3, device=device, feature_extractor_weights_path=str(self.weights_path)
            )
        features = run_extractor(self._extractor, images).numpy()
        inputs = MetricInputs(generated_features=features, real_features=self.real.features)
        if self.fidelity_options is None:
            values = calc_metric("fid", inputs).values
        else:
            values = calc_metric("fidelity", inputs, **self.fidelity_options).values
        eval_seconds = self.clock() - began
        self._eval_seconds += eval_seconds
        self.points.append({"training_minutes": training_minutes, **values, "eval_seconds": eval_seconds})
        return values["fid"]


def plot_fid_curve(points: list[dict[str, float]]):  # -> matplotlib Figure
    """FID against training minutes (log scale: early values are in the hundreds, good ones near 10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    minutes = np.array([p["training_minutes"] for p in points])
    axis.plot(minutes, [p["fid"] for p in points], marker="o")
    axis.set(
        xlabel="training minutes (evaluation time excluded)",
        ylabel="FID",
        yscale="log",
        title="FID of the EMA generator during training",
    )
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    return figure
