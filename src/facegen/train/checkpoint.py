"""Training state on disk: everything needed to continue a run exactly where it stopped.

A checkpoint holds G, D, the EMA generator, both optimisers, the gradient scaler, the trainer's RNG state, the
counters (generator steps, images seen), the rollback count and the metric history, so curves continue instead of
restarting after a resume. Writes are atomic (temp file + rename): a kill mid-write leaves the previous checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facegen.models.bundle import atomic_torch_save

FORMAT_VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_torch_save({"format_version": FORMAT_VERSION, **state}, path)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; it holds only tensors and plain containers."""
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    return state
