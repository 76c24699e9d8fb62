"""torch.distributed (DDP) plumbing for torchrun launches; a single process is world size 1 with no process group."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_environment(device: torch.device) -> DistributedContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); NCCL on GPUs, gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank=rank, world_size=world_size, device=device)


def wrap(module: nn.Module, context: DistributedContext) -> nn.Module:
    """DDP-wrap for gradient all-reduce; identity in a single process. Rank 0's buffers (BatchNorm statistics) are
    broadcast at each forward, so replicas agree on them too."""
    if not context.enabled:
        return module
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def mean_across_ranks(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Average a scalar over ranks, for logging numbers that describe the whole global batch."""
    if not context.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / context.world_size


def parameter_digest(module: nn.Module) -> torch.Tensor:
    """A float64 checksum of every parameter (sum and sum of squares): equal on all ranks iff replicas agree."""
    values = [p.detach().double() for p in module.parameters()]
    return torch.stack([sum(v.sum() for v in values), sum(v.square().sum() for v in values)])


def assert_replicas_identical(module: nn.Module, context: DistributedContext) -> list[list[float]]:
    """Gather every rank's parameter digest and fail loudly if DDP replicas drifted apart."""
    digest = parameter_digest(module).to(context.device)
    if not context.enabled:
        return [digest.tolist()]
    gathered = [torch.empty_like(digest) for _ in range(context.world_size)]
    dist.all_gather(gathered, digest)
    digests = [g.tolist() for g in gathered]
    if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
        raise RuntimeError(f"DDP replicas diverged: parameter digests per rank {digests}")
    return digests


def _rng_states(trainer_rng: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's random streams: the trainer's generator and torch's global ones (StyleGAN's noise and style
    mixing draw from those)."""
    states = {"trainer": trainer_rng.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def gather_rng_states(trainer_rng: torch.Generator, context: DistributedContext) -> list[dict[str, torch.Tensor]]:
    """Every rank's random streams, in rank order (a collective: all ranks call it at the same point), so a resumed
    DDP run continues each rank's draws instead of giving every rank rank 0's."""
    mine = _rng_states(trainer_rng, context.device)
    if not context.enabled:
        return [mine]
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(context.world_size)]
    for name, state in mine.items():  # byte tensors; NCCL moves only device tensors
        parts = [torch.empty_like(state, device=context.device) for _ in range(context.world_size)]
        dist.all_gather(parts, state.to(context.device))
        for rank, part in enumerate(parts):
            gathered[rank][name] = part.cpu()
    return gathered


def restore_rng_states(states: list[dict[str, Any]], trainer_rng: torch.Generator, context: DistributedContext) -> None:
    """Continue this rank's random streams from a checkpoint written at the same world size. At another world size
    the draws cannot continue exactly anyway (each rank's share of a batch changes): the fresh seeding is kept."""
    if len(states) != context.world_size:
        return
    mine = states[context.rank]
    trainer_rng.set_state(mine["trainer"].cpu())  # generator states are CPU byte tensors, CUDA generators' too
    torch.set_rng_state(mine["torch"].cpu())
    if "cuda" in mine and context.device.type == "cuda":
        torch.cuda.set_rng_state(mine["cuda"].cpu(), context.device)
