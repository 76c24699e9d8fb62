"""Generation latency as an evaluation metric: how long one face takes at the model's resolution, on this machine.

Deploy decisions see speed next to quality. The timing covers what the service does for one face (latent → uint8
image on the host), after warm-up, with the device synchronised, so p50/p95 are wall-clock per-request figures.
"""

from __future__ import annotations

import platform
import time

import numpy as np
import torch
from torch import nn

from facegen.models.sampling import faces_from_seeds


def device_name(device: torch.device) -> str:
    """What the figures were measured on (GPU model, or CPU architecture and thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"


def generation_latency(
    generator: nn.Module,
    *,
    repeats: int = 50,  # timed single-face requests
    warmup: int = 5,  # untimed requests first (allocator, kernel selection, lazy init)
    device: str | torch.device = "cpu",
    labels: np.ndarray | None = None,  # one label row for a conditional generator
    seed: int = 0,
) -> dict[str, float | str]:
    """p50 / p95 / mean milliseconds to generate one face, with the device and resolution they were measured at."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0, got {repeats}, {warmup}")
    device = torch.device(device)
    generator = generator.to(device)
    timings = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        image = faces_from_seeds(generator, [seed + i], device=device, labels=labels)
        elapsed = time.perf_counter() - started  # faces_from_seeds returns host memory: the device has finished
        if i >= warmup:
            timings.append(elapsed * 1000.0)
    p50, p95 = np.percentile(timings, [50, 95])
    return {
        "latency_p50_ms": float(p50),
        "latency_p95_ms": float(p95),
        "latency_mean_ms": float(np.mean(timings)),
        "latency_resolution": int(image.shape[-1]),
        "latency_device": device_name(device),
    }
