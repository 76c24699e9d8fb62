"""Expected training memory per GPU of a StyleGAN2 config (configs/gpu256.yaml, gpu1024.yaml), from CPU measurements.

No GPU is lent here, so the figure is built from two parts, each in the output:

- **state**, counted exactly from the full-width parameter counts: per generator parameter 4 B weight + 4 B grad +
  8 B Adam + 4 B EMA copy, per discriminator parameter 4 + 4 + 8 B, plus the loop's last good state, a copy kept on
  the training device for NaN rollbacks (G, EMA and D weights and both Adams' moments: 16 B per G, 12 B per D param);
- **activations**, measured: the peak of live tensor bytes (every storage an op creates, freed when its last
  reference goes; a TorchDispatchMode, so it is exact and repeatable, unlike RSS) while the real ``train_gan`` runs
  two generator steps with the config's training (bf16 autocast on the CPU, the first discriminator step with lazy
  R1, DiffAugment) at channel widths f = 1/16, 1/8 and 1/4 of the config's, at batches 2 and 4. The per-image slope
  at each f is a line in f (every activation is B×C×H×W with C ∝ f, or image-sized and f-free), fitted on 1/8 and
  1/4 and checked at 1/16, then read at f = 1. The per-epoch sample grid's no_grad forward pass (fp32) is measured
  the same way, per face.

Peak = state + max(batch × per-image activations, grid faces × per-face forward). CPU is not CUDA: cuDNN workspaces,
the caching allocator's rounding and CUDA autocast's cast list differ, and the dataset is not in it (data_on_device
puts the packed set on the GPU when it takes < 40 % of free memory): confirm with ``torch.cuda.max_memory_allocated``
on the first GPU run.

    python benchmarks/stylegan_memory.py configs/gpu256.yaml configs/gpu1024.yaml
"""

from __future__ import annotations

import argparse
import json
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from facegen.models.registry import build_discriminator, build_generator
from facegen.train.config import TrainingConfig, check_run_config
from facegen.train.loop import train_gan

FIT_FRACTIONS = (1 / 8, 1 / 4)  # the widest two: the line is read at f = 1
CHECK_FRACTION = 1 / 16
BATCHES = (2, 4)
GIB = 2**30
G_BYTES_PER_PARAM = 4 + 4 + 8 + 4 + 16  # weight, grad, Adam m+v, EMA copy; rollback copy of weight, EMA, Adam
D_BYTES_PER_PARAM = 4 + 4 + 8 + 12  # weight, grad, Adam m+v; rollback copy of weight, Adam


class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of live tensor storages created inside the context (views and in-place results count once)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += self.live[key]
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


def _load(path: Path) -> tuple[TrainingConfig, int]:
    run = yaml.safe_load(path.read_text())
    return check_run_config(run), int(run["parameters"]["resolution"])


def _model(config: TrainingConfig, resolution: int, fraction: float) -> dict[str, Any]:
    widths = {key: int(config.model[key] * fraction) for key in ("channel_base", "channel_max")}
    return {**config.model, **widths, "resolution": resolution}


def _peak(run: Callable[[], object]) -> int:
    with PeakTensorBytes() as tracker:
        run()
    return tracker.peak


def _training_peak(config: TrainingConfig, resolution: int, fraction: float, batch: int) -> int:
    """Two generator steps of the config's own training at width ``fraction`` and ``batch`` images."""
    overrides = {"model": _model(config, resolution, fraction), "batch_size": batch, "epochs": 1, "grid_size": 2}
    overrides |= {"device": "cpu", "fid_every_steps": 0, "log_every_steps": 1, "checkpoint_every_steps": 0}
    training = TrainingConfig.from_dict({**config.to_dict(), **overrides, "augment": config.augment.__dict__})
    images = np.random.default_rng(0).integers(0, 256, (2 * batch, 3, resolution, resolution), dtype=np.uint8)
    labels = np.zeros((len(images), 3), dtype=np.int64)  # which labels does not change the memory
    return _peak(lambda: train_gan(images, training, labels=labels, progress=False))


def _grid_peak(config: TrainingConfig, resolution: int, fraction: float, faces: int) -> int:
    """The sample grid's forward pass: eval mode, no_grad, fp32 (as the loop draws it)."""
    generator = build_generator(config.architecture, _model(config, resolution, fraction)).eval()
    latents = torch.randn(faces, generator.latent_dim)
    labels = torch.zeros(faces, 3, dtype=torch.long) if generator.conditional else None
    with torch.no_grad():
        return _peak(lambda: generator(latents, labels))


def _per_image(measure: Callable[[float, int], int], fraction: float) -> tuple[float, float]:
    """(bytes one more image adds, the batch-independent rest) at width ``fraction``."""
    small, large = (measure(fraction, batch) for batch in BATCHES)
    slope = (large - small) / (BATCHES[1] - BATCHES[0])
    return slope, small - BATCHES[0] * slope


def _at(fitted: dict[float, tuple[float, float]], fraction: float) -> float:
    (f1, (s1, _)), (f2, (s2, _)) = ((f, fitted[f]) for f in FIT_FRACTIONS)
    return s1 + (fraction - f1) * (s2 - s1) / (f2 - f1)


def estimate(path: Path) -> dict[str, Any]:
    """The memory report of one config (GiB)."""
    config, resolution = _load(path)
    model = _model(config, resolution, 1.0)
    g_params = sum(p.numel() for p in build_generator(config.architecture, model).parameters())
    d_params = sum(p.numel() for p in build_discriminator(config.architecture, model).parameters())
    state = g_params * G_BYTES_PER_PARAM + d_params * D_BYTES_PER_PARAM
    torch.manual_seed(0)
    train = {
        f: _per_image(lambda f, b: _training_peak(config, resolution, f, b), f)
        for f in (CHECK_FRACTION, *FIT_FRACTIONS)
    }
    grid = {f: _per_image(lambda f, b: _grid_peak(config, resolution, f, b), f) for f in FIT_FRACTIONS}
    activations = config.batch_size * _at(train, 1.0)
    grid_forward = config.grid_size * _at(grid, 1.0)
    return {
        "config": str(path),
        "resolution": resolution,
        "batch_size": config.batch_size,
        "generator_parameters": g_params,
        "discriminator_parameters": d_params,
        "state_gib": state / GIB,
        "activations_per_image_gib": _at(train, 1.0) / GIB,
        "activations_gib": activations / GIB,
        "grid_faces": config.grid_size,
        "grid_forward_gib": grid_forward / GIB,
        "peak_gib": (state + max(activations, grid_forward)) / GIB,
        "packed_dataset_gib_per_23k_faces": 23_000 * 3 * resolution**2 / GIB,
        "per_image_measured_gib": {f"{f:g}": slope / GIB for f, (slope, _) in train.items()},
        "per_image_line_at_check_gib": _at(train, CHECK_FRACTION) / GIB,
        "batch_independent_measured_gib": {f"{f:g}": rest / GIB for f, (_, rest) in train.items()},
        "grid_per_face_measured_gib": {f"{f:g}": slope / GIB for f, (slope, _) in grid.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for path in args.configs:
        print(json.dumps(estimate(path), indent=1), flush=True)


if __name__ == "__main__":
    main()
