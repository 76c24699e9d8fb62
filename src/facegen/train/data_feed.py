"""Batches of real images for the trainer: the uint8 dataset lives on the GPU when it fits, else in pinned memory."""

from __future__ import annotations

import numpy as np
import torch

#: Share of free GPU memory the uint8 dataset may take before it is streamed from pinned host memory instead.
DEVICE_MEMORY_SHARE = 0.4


def should_place_on_device(nbytes: int, device: torch.device, policy: str) -> bool:
    """``auto``: on the GPU when it takes under 40 % of free memory (always true for CPU training)."""
    if device.type != "cuda" or policy == "always":
        return True
    if policy == "never":
        return False
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes < DEVICE_MEMORY_SHARE * free


class DataFeed:
    """Gathers uint8 batches by index; one host→device copy for the whole set, or one per batch when streaming."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, device: torch.device, policy: str) -> None:
        self.device = device
        self.on_device = should_place_on_device(images.nbytes, device, policy)
        host = torch.from_numpy(np.ascontiguousarray(images))
        if self.on_device:
            self.images = host.to(device)
        else:
            self.images = host.pin_memory()
        self.labels = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels)).long().to(device)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 B×3×R×R images on the training device (and their labels, when the data has them)."""
        if self.on_device:
            images = self.images[index]
        else:
            images = self.images[index.cpu()].pin_memory().to(self.device, non_blocking=True)
        return images, None if self.labels is None else self.labels[index.to(self.labels.device)]
