"""Exponential moving average of the generator: smoother weights for evaluation and serving."""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    """Keeps ``shadow`` as an EMA of a generator's parameters; buffers (BatchNorm running stats) are copied."""

    def __init__(self, generator: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(generator).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        """One EMA step; the decay ramps up over the first updates so early EMA weights are not stuck at init."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for shadow_param, param in zip(self.shadow.parameters(), generator.parameters()):
            shadow_param.lerp_(param.detach(), 1.0 - decay)
        for shadow_buffer, buffer in zip(self.shadow.buffers(), generator.buffers()):
            shadow_buffer.copy_(buffer)
