"""Faces from (seed, truncation, attributes) on the served model, concurrent requests coalesced into few forward passes.

A face is fully determined by (model version, seed, truncation psi, attributes), because every face is drawn by
:func:`facegen.models.sampling.faces_from_seeds`, the one seed→face function that evaluation, the registered pyfunc
model and the feedback export use too:
- a seed is one face: its latent comes from its own seeded stream, so a face never depends on the other faces of its
  batch; the generator runs in eval mode (batch norm uses running statistics, StyleGAN its constant noise);
- truncation is the generator's own ``truncation_psi``: DCGAN scales z toward the mean latent 0 of N(0, I)
  (``psi · z``), StyleGAN pulls W toward its tracked mean ``w_avg``. ``psi = 1`` is the untruncated face, ``psi = 0``
  the version's "average" face;
- attributes (conditional generators) become one label row (−1 = unspecified), see
  :mod:`facegen.models.conditioning`. A conditional generator asked for no attributes gets "all unspecified".

:class:`BatchingRenderer` runs the generator in one worker thread: whatever requests are queued when it becomes free
(up to ``max_forward_batch`` faces) are rendered together, one forward pass per distinct (psi, labels). It reads
``holder.current`` once per round, so every face of a round, and every face of one request, comes from the same
model object: a swap in between never mixes versions inside a response.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facegen.models.conditioning import encode_labels
from facegen.models.sampling import faces_from_seeds
from facegen.serve.loading import LoadedModel
from facegen.serve.model_holder import ModelHolder

logger = logging.getLogger("facegen.serve.inference")

#: Largest seed the service accepts: 2**53 - 1, exact in JSON numbers everywhere (JavaScript, JSON Schema bounds
#: written as floats) and within SQLite's signed 64-bit INTEGER.
MAX_SEED = 2**53 - 1

LabelRow = tuple[int, ...]


class ModelNotReady(RuntimeError):
    """No model is loaded yet (the alias has never resolved to a loadable version)."""


class AttributesNotSupported(ValueError):
    """Attributes were requested that the generator is not conditioned on (e.g. any, from an unconditional one)."""


def label_row_for(generator: nn.Module, attributes: dict[str, str] | None) -> LabelRow | None:
    """The label row a generator needs for ``attributes``: None for unconditional generators (which refuse any)."""
    label_dims = dict(generator.label_dims)
    extra = sorted(set(attributes or {}) - set(label_dims))
    if extra:
        why = f"it is conditioned on {list(label_dims)} only" if label_dims else "it is unconditional"
        raise AttributesNotSupported(f"cannot condition on {extra}: {why}")
    if not label_dims:
        return None
    try:
        return tuple(int(value) for value in encode_labels(label_dims, attributes or {}).tolist())
    except ValueError as error:
        raise AttributesNotSupported(str(error)) from error


def render_faces(
    generator: nn.Module,
    seeds: Sequence[int],
    *,
    truncation: float = 1.0,
    labels: LabelRow | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> np.ndarray:
    """:func:`faces_from_seeds` for one ``truncation`` and one label row, as uint8 N×H×W×3 (channels last).

    psi is checked here because it arrives from requests and feedback rows; image encoders want channels last.
    """
    if not 0.0 <= float(truncation) <= 1.0:
        raise ValueError(f"truncation psi must lie in [0, 1], got {truncation}")
    faces = faces_from_seeds(
        generator, seeds, labels=labels, truncation_psi=float(truncation), device=device, batch_size=batch_size
    )
    return np.ascontiguousarray(faces.transpose(0, 2, 3, 1))


@dataclass
class _Job:
    seeds: list[int]
    truncation: float
    attributes: dict[str, str] | None
    future: concurrent.futures.Future


BatchHook = Callable[[int, float], None]


class BatchingRenderer:
    """One generator thread; requests queue, the thread takes what is waiting and renders it together."""

    def __init__(self, holder: ModelHolder, *, max_forward_batch: int = 32, on_batch: BatchHook | None = None) -> None:
        self.holder = holder
        self.max_forward_batch = max_forward_batch
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending: _Job | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="facegen-renderer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(
        self, seeds: Sequence[int], truncation: float = 1.0, attributes: dict[str, str] | None = None
    ) -> concurrent.futures.Future:
        """Queue one request; the future resolves to ``(LoadedModel, uint8 N×H×W×3)``."""
        if not 1 <= len(seeds) <= self.max_forward_batch:
            raise ValueError(f"a request holds 1..{self.max_forward_batch} faces, got {len(seeds)}")
        if self._thread is None:
            raise RuntimeError("the renderer is not running")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put(_Job([int(s) for s in seeds], float(truncation), attributes or None, future))
        return future

    async def render(
        self, seeds: Sequence[int], truncation: float = 1.0, attributes: dict[str, str] | None = None
    ) -> tuple[LoadedModel, np.ndarray]:
        return await asyncio.wrap_future(self.submit(seeds, truncation, attributes))

    def _take_batch(self) -> tuple[list[_Job], bool]:
        """Block for one job, then take what else is queued up to the forward-batch bound. (jobs, stop requested)."""
        first = self._pending if self._pending is not None else self._queue.get()
        self._pending = None
        if first is None:
            return [], True
        jobs, total = [first], len(first.seeds)
        while total < self.max_forward_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            if total + len(job.seeds) > self.max_forward_batch:
                self._pending = job  # first in line next time
                break
            jobs.append(job)
            total += len(job.seeds)
        return jobs, False

    def _render_jobs(self, model: LoadedModel, jobs: list[_Job]) -> None:
        """Render ``jobs`` on ``model``, one forward pass per distinct (psi, labels); resolve each job's future."""
        groups: dict[tuple[float, LabelRow | None], list[_Job]] = {}
        for job in jobs:
            try:
                labels = label_row_for(model.generator, job.attributes)
            except AttributesNotSupported as error:
                job.future.set_exception(
                    AttributesNotSupported(f"model version {model.version} ({model.architecture}) {error}")
                )
                continue
            groups.setdefault((job.truncation, labels), []).append(job)
        for (psi, labels), group in groups.items():
            seeds = [seed for job in group for seed in job.seeds]
            started = time.perf_counter()
            try:
                faces = render_faces(
                    model.generator,
                    seeds,
                    truncation=psi,
                    labels=labels,
                    device=model.device,
                    batch_size=self.max_forward_batch,
                )
            except Exception as error:
                logger.exception("rendering %d faces on version %s failed", len(seeds), model.version)
                for job in group:
                    job.future.set_exception(error)
                continue
            if self.on_batch is not None:
                self.on_batch(len(seeds), time.perf_counter() - started)
            start = 0
            for job in group:
                job.future.set_result((model, faces[start : start + len(job.seeds)]))
                start += len(job.seeds)

    def _run(self) -> None:
        while True:
            jobs, stop = self._take_batch()
            if stop:
                break
            jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # drop abandoned requests
            if not jobs:
                continue
            model = self.holder.current  # one model object for the whole round
            if model is None:
                error = ModelNotReady(self.holder.not_ready_reason())
                for job in jobs:
                    job.future.set_exception(error)
                continue
            self._render_jobs(model, jobs)
