"""Exponential moving average of the generator: smoother weights for evaluation and serving."""

from __future__ import annotations

import copy

import torch
from torch import nn

STANDING_BATCHES = 16  # batches of STANDING_BATCH latents behind the EMA generator's BatchNorm statistics
STANDING_BATCH = 64
STANDING_SEED = 20_190_212  # fixed latents and labels: the statistics are a function of the weights alone


def _batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def standing_statistics(generator: nn.Module) -> None:
    """Re-estimate a generator's BatchNorm running statistics under its own weights, in place ("standing
    statistics", Brock et al., "Large Scale GAN Training for High Fidelity Natural Image Synthesis", ICLR 2019).

    The cumulative average over fixed latents and uniformly drawn labels (``label_dims``) replaces whatever the
    buffers held; a generator without BatchNorm is left as it is. Ends in eval mode.
    """
    norms = _batch_norms(generator)
    if not norms:
        return
    device = next(generator.parameters()).device
    stream = torch.Generator().manual_seed(STANDING_SEED)
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch counts the same
    generator.train()
    for _ in range(STANDING_BATCHES):
        z = torch.randn(STANDING_BATCH, generator.latent_dim, generator=stream)
        labels = None
        if generator.label_dims:
            columns = [
                torch.randint(0, n, (STANDING_BATCH, 1), generator=stream) for n in generator.label_dims.values()
            ]
            labels = torch.cat(columns, dim=1).to(device)
        generator(z.to(device), labels)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    generator.eval()


class GeneratorEMA:
    """Keeps ``shadow`` as an EMA of a generator's parameters; read it through :attr:`generator`."""

    def __init__(self, generator: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(generator).eval().requires_grad_(False)
        self.updates = 0
        self._stale = True

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        """One EMA step; the decay ramps up over the first updates so early EMA weights are not stuck at init."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for shadow_param, param in zip(self.shadow.parameters(), generator.parameters()):
            shadow_param.lerp_(param.detach(), 1.0 - decay)
        self._stale = True

    def restore(self, shadow_state: dict, updates: int) -> None:
        """Continue from a checkpoint's EMA weights and update count."""
        self.shadow.load_state_dict(shadow_state)
        self.updates = updates
        self._stale = True

    @property
    def generator(self) -> nn.Module:
        """The EMA generator, its BatchNorm statistics estimated under its own (averaged) weights.

        The online generator's running statistics belong to other weights: normalising the averaged network's
        activations with them gave washed-out, low-contrast faces (docs/benchmarks.md, FID against minutes).
        Recomputed only when the weights moved since the last read; a pure function of the weights, so a resumed run
        reads the same generator as an uninterrupted one.
        """
        if self._stale:
            standing_statistics(self.shadow)
            self._stale = False
        return self.shadow
