"""The tiny DCGAN run the kill-and-resume tests train: checkpoints every 2 steps, so a kill lands between two."""

from __future__ import annotations

RESUMABLE_TRAINING = {
    "model": {"latent_dim": 16, "width": 8},
    "epochs": 40,
    "batch_size": 16,
    "grid_size": 4,
    "log_every_steps": 2,
    "checkpoint_every_steps": 2,
    "device": "cpu",
}
