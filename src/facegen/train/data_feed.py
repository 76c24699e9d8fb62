"""Batches of real images for the trainer, from the uint8 set held whole (on the GPU when it fits, else in pinned
memory) or streamed shard by shard from a :class:`facegen.data.shards.ShardSet` when it does not fit.

Both feeds serve batches by row index, so the loop draws every epoch the same way (a permutation, or draws in
proportion to balance's weights); the streaming feed first regroups an epoch's draws by shard
(:func:`shard_blocked_order`) so that it reads each shard once per epoch and each DDP rank reads only its own.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from facegen.data.shards import ShardSet
from facegen.train.config import DATA_POLICIES

#: Share of free memory (GPU memory, or host memory for CPU training) the decoded uint8 set may take before it is
#: streamed from its shards instead (``data_on_device: auto``).
DEVICE_MEMORY_SHARE = 0.4
#: Shards whose draws an epoch mixes together (across-shard shuffling), and shards decoded ahead of need.
MIX_SHARDS = 2
PREFETCH_SHARDS = 2


def free_memory(device: torch.device) -> int:
    """Bytes free where the batches are needed: the GPU's memory, or the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as meminfo:  # MemAvailable counts reclaimable page cache, unlike "free"
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    return kib * 1024


def should_place_on_device(nbytes: int, device: torch.device, policy: str) -> bool:
    """``auto``: on the GPU when it takes under 40 % of free memory (always true for CPU training)."""
    if device.type != "cuda" or policy == "always":
        return True
    if policy == "never":
        return False
    return nbytes < DEVICE_MEMORY_SHARE * free_memory(device)


def should_stream(data: np.ndarray | ShardSet, device: torch.device, policy: str) -> bool:
    """Stream shards when told to (``stream``), or under ``auto`` when the decoded set would not fit in 40 % of the
    free GPU memory and host memory, or of the host's for CPU training. An array is never streamed."""
    if policy not in DATA_POLICIES:
        raise ValueError(f"data_on_device must be one of {DATA_POLICIES}, got {policy!r}")
    if not isinstance(data, ShardSet):
        if policy == "stream":
            raise ValueError("data_on_device: stream reads shards; this training set is an in-memory array")
        return False
    if policy != "auto":
        return policy == "stream"
    budget = free_memory(torch.device("cpu"))
    if device.type == "cuda":
        budget = min(budget, free_memory(device))
    return data.nbytes >= DEVICE_MEMORY_SHARE * budget


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
        self.labels = _labels_on(labels, device)

    def __len__(self) -> int:
        return len(self.images)

    def epoch_order(self, order: torch.Tensor, epoch: int) -> torch.Tensor:
        """The epoch's draws as they are: any row is at hand."""
        return order

    def begin(self, order: torch.Tensor, cursor: int) -> None:
        """Nothing to read ahead: the whole set is in memory."""

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 B×3×R×R images on the training device (and their labels, when the data has them)."""
        if self.on_device:
            images = self.images[index]
        else:
            images = self.images[index.cpu()].pin_memory().to(self.device, non_blocking=True)
        return images, None if self.labels is None else self.labels[index.to(self.labels.device)]

    def reference(self, index: torch.Tensor) -> torch.Tensor:
        """Fixed real images (the health monitor's diversity yardstick)."""
        return self.batch(index.to(self.device))[0]


def shard_blocked_order(
    order: torch.Tensor, shard_of_row: np.ndarray, *, world_size: int, seed: int, epoch: int, mix: int = MIX_SHARDS
) -> torch.Tensor:
    """An epoch's draws regrouped for streaming: shards in a fresh random order each epoch, dealt round-robin to the
    ranks; each rank's draws grouped by its shards and shuffled within windows of ``mix`` shards (so consecutive
    batches mix several shards); the ranks' streams interleaved so that position ``j·world_size + r`` is rank r's
    j-th draw (the loop gives rank r every world_size-th row of a global batch). The draws are the same multiset:
    only their order changes, except that a rank with fewer draws repeats some of its last window's draws so that
    every rank takes the same number of steps (DDP)."""
    shard_of = torch.from_numpy(np.asarray(shard_of_row, dtype=np.int64))[order]
    num_shards = int(shard_of_row.max()) + 1 if len(shard_of_row) else 0
    if num_shards < world_size:
        raise ValueError(f"{num_shards} shards for {world_size} ranks: write smaller shards (images_per_shard)")
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7 * int(epoch) + 11)
    shard_rank = torch.empty(num_shards, dtype=torch.int64)
    shard_rank[torch.randperm(num_shards, generator=generator)] = torch.arange(num_shards) % world_size
    position = torch.empty(num_shards, dtype=torch.int64)  # where each shard comes in its rank's sequence
    for rank in range(world_size):
        mine = torch.nonzero(shard_rank == rank).flatten()
        position[mine[torch.randperm(len(mine), generator=generator)]] = torch.arange(len(mine))
    streams = []
    for rank in range(world_size):
        draws = torch.nonzero(shard_rank[shard_of] == rank).flatten()
        if not len(draws):
            raise ValueError(f"epoch {epoch} drew nothing from rank {rank}'s shards: write smaller shards")
        shuffled = draws[torch.randperm(len(draws), generator=generator)]
        window = position[shard_of[shuffled]] // mix
        window, by_window = torch.sort(window, stable=True)  # windows in sequence, random order inside each
        streams.append((shuffled[by_window], window))
    length = max(len(stream) for stream, _ in streams)
    padded = []
    for stream, window in streams:
        last = stream[window == window[-1]]
        extra = last[torch.randint(len(last), (length - len(stream),), generator=generator)]
        padded.append(order[torch.cat([stream, extra])])
    return torch.stack(padded, dim=1).reshape(-1)


class StreamingFeed:
    """Serves uint8 batches of a rank's share of an epoch from shards decoded ahead in worker threads.

    Memory is bounded by the shards in play (about ``2·MIX_SHARDS + PREFETCH_SHARDS`` decoded shards), whatever the
    set's size: a shard is dropped once the epoch has no more draws from it. Labels (small) stay on the device.
    """

    def __init__(
        self,
        shards: ShardSet,
        labels: np.ndarray | None,
        device: torch.device,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        workers: int = 2,
    ) -> None:
        self.shards, self.device, self.rank, self.world_size, self.seed = shards, device, rank, world_size, seed
        self.labels = _labels_on(labels, device)
        self.shard_of_row = shards.shard_of_row
        first_image = np.searchsorted(shards.shard_of_image, np.arange(len(shards.shards)))
        self.slot_of_row = torch.from_numpy(shards.image_of_row - first_image[self.shard_of_row])
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="facegen-shards")
        self.decoded: dict[int, Future] = {}
        self.remaining: dict[int, int] = {}
        self.sequence: list[int] = []
        self.shards_read = 0

    def __len__(self) -> int:
        return len(self.shards)

    def epoch_order(self, order: torch.Tensor, epoch: int) -> torch.Tensor:
        return shard_blocked_order(
            order.cpu(), self.shard_of_row, world_size=self.world_size, seed=self.seed, epoch=epoch
        ).to(order.device)

    def begin(self, order: torch.Tensor, cursor: int) -> None:
        """Plan this rank's reads for the rest of the epoch (from global position ``cursor``) and start decoding."""
        for future in self.decoded.values():
            future.cancel()
        mine = order[cursor:].cpu()[self.rank :: self.world_size]
        shard_of = self.shard_of_row[mine.numpy()]
        shards, counts = np.unique(shard_of, return_counts=True)
        self.remaining = dict(zip(shards.tolist(), counts.tolist()))
        first_use = {int(shard): i for i, shard in reversed(list(enumerate(shard_of)))}
        self.sequence = sorted(first_use, key=first_use.get)
        self.decoded = {}
        self._read_ahead()

    def _read_ahead(self, needed: set[int] = frozenset()) -> None:
        for shard in needed - set(self.decoded):  # out of plan order (a batch spanning windows): read it now
            if shard in self.sequence:
                self.sequence.remove(shard)
            self._submit(shard)
        while self.sequence and len(self.decoded) < 2 * MIX_SHARDS + PREFETCH_SHARDS:
            self._submit(self.sequence.pop(0))

    def _submit(self, shard: int) -> None:
        self.decoded[shard] = self.pool.submit(self.shards.decode_shard, shard)
        self.shards_read += 1

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = index.cpu().numpy()
        shard_of = self.shard_of_row[rows]
        self._read_ahead(set(np.unique(shard_of).tolist()))
        slots = self.slot_of_row[rows].numpy()
        out = torch.empty((len(rows), 3, self.shards.resolution, self.shards.resolution), dtype=torch.uint8)
        if self.device.type == "cuda":
            out = out.pin_memory()
        for shard in np.unique(shard_of).tolist():
            pixels, _images = self.decoded[shard].result()  # a ShardError (after retries) ends the run, naming it
            here = shard_of == shard
            out[torch.from_numpy(np.flatnonzero(here))] = torch.from_numpy(pixels[slots[here]])
            self.remaining[shard] -= int(here.sum())
            if self.remaining[shard] <= 0:
                del self.decoded[shard]
        self._read_ahead()
        labels = None if self.labels is None else self.labels[index.to(self.labels.device)]
        return out.to(self.device, non_blocking=True), labels

    def reference(self, index: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.shards.read_rows(index.cpu().numpy())).to(self.device)


def make_feed(
    data: np.ndarray | ShardSet,
    labels: np.ndarray | None,
    device: torch.device,
    policy: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
) -> DataFeed | StreamingFeed:
    """The feed ``data_on_device`` asks for: a shard set is decoded whole when it fits (and then trains exactly as
    the packed array did), else streamed."""
    if should_stream(data, device, policy):
        return StreamingFeed(data, labels, device, rank=rank, world_size=world_size, seed=seed)
    return DataFeed(data.to_array() if isinstance(data, ShardSet) else data, labels, device, policy)


def _labels_on(labels: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if labels is None else torch.from_numpy(np.ascontiguousarray(labels)).long().to(device)
