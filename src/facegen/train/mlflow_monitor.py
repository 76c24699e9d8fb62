"""Training monitor that writes to the active MLflow run: losses per step, a sample grid per epoch, curves at the end."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402

from facegen.provenance.c2pa_manifest import GridProvenance  # noqa: E402
from facegen.provenance.marking import FaceMarker, log_marked_grid  # noqa: E402
from facegen.registry.names import GENERATOR_MODEL_NAME  # noqa: E402


class MlflowTrainingMonitor:
    """Implements ``facegen.train.loop.TrainingMonitor`` against ``mlflow``'s active run.

    Each epoch's grid is a signed PNG (``marker``) naming the run and, as what regenerates it, the training seed (the
    loop draws the grid's latents from it) and the epoch and step whose EMA weights drew it.
    """

    def __init__(self, marker: FaceMarker, training_seed: int) -> None:
        self.marker = marker
        self.training_seed = training_seed

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics({f"train_{name}": value for name, value in metrics.items()}, step=step)

    def on_epoch_end(self, epoch: int, step: int, grid: np.ndarray) -> None:
        shown = {"training_seed": self.training_seed, "epoch": epoch, "step": step}
        made_by = GridProvenance(GENERATOR_MODEL_NAME, mlflow.active_run().info.run_id, shown)
        log_marked_grid(grid, f"samples/epoch_{epoch:03d}.png", made_by, self.marker)


def plot_loss_curves(history: list[dict[str, float]]) -> plt.Figure:
    """Discriminator/generator losses and D's mean real/fake probabilities against generator steps."""
    steps = [row["step"] for row in history]
    figure, (losses, probabilities) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("loss_d", "loss_g"):
        losses.plot(steps, [row[key] for row in history], label=key)
    for key in ("d_real_prob", "d_fake_prob"):
        probabilities.plot(steps, [row[key] for row in history], label=key)
    losses.set(xlabel="generator step", ylabel="loss", title="GAN losses")
    probabilities.set(xlabel="generator step", ylabel="mean D(x)", title="Discriminator outputs", ylim=(0, 1))
    for axes in (losses, probabilities):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure
