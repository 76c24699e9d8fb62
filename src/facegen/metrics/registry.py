"""Named metrics with uniform results (as stylegan2-ada-pytorch's ``metric_main``): ``calc_metric(name, inputs)``.

Every metric reads what it needs from one :class:`MetricInputs` (the generator, its generated faces and their
Inception features, the real features) plus its own options, and answers a :class:`MetricResult`: the metric's
name, its values under the names MLflow logs, string tags, per-sample arrays, the seconds it took and how many
generated and real samples it saw. An input a metric needs but was not given, or an option it does not take, is an
error naming it: a metric that cannot be computed raises, it never reports a placeholder.

Registered here: ``fid`` (FID alone, the cheap figure tracked while training), ``fid_inf`` (FID extrapolated to
infinitely many samples: the FID figure that compares across sample counts), ``fidelity`` (FID, KID,
precision/recall in one pass), ``inception_score``, ``memorisation`` and ``latency``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from facegen.devices import resolve_device
from facegen.metrics.fidelity import fid_infinity, fidelity_from_features, frechet_distance
from facegen.metrics.inception_score import inception_score
from facegen.metrics.latency import generation_latency
from facegen.metrics.memorisation import memorisation_report


@dataclass(frozen=True)
class MetricInputs:
    """What a metric may read; each metric declares the fields it needs (the others may stay None)."""

    generator: nn.Module | None = None
    faces: np.ndarray | None = None  # generated uint8 N×3×H×W
    generated_features: np.ndarray | None = None  # their Inception pool3 features, N×2048
    real_features: np.ndarray | None = None  # pool3 features of the unique real faces
    device: str | torch.device | None = None


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What a metric function answers: values under their logged names, tags, arrays and the samples it saw."""

    values: dict[str, float]
    num_generated: int
    num_real: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricResult(Measurement):
    """A :class:`Measurement` with the metric's name and the seconds :func:`calc_metric` spent on it."""

    name: str
    seconds: float


@dataclass(frozen=True)
class _Metric:
    function: Callable[..., Measurement]
    needs: tuple[str, ...]


_METRICS: dict[str, _Metric] = {}
_INPUTS = tuple(MetricInputs.__dataclass_fields__)


def register_metric(name: str, *, needs: tuple[str, ...]) -> Callable[[Callable[..., Measurement]], Callable]:
    """Decorator: ``function(inputs, **options) -> Measurement`` becomes metric ``name``, reading fields ``needs``."""
    unknown = set(needs) - set(_INPUTS)
    if unknown:
        raise ValueError(f"metric {name!r} needs unknown inputs {sorted(unknown)}; MetricInputs has {_INPUTS}")

    def register(function: Callable[..., Measurement]) -> Callable[..., Measurement]:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        _METRICS[name] = _Metric(function, needs)
        return function

    return register


def metric_names() -> list[str]:
    """The registered metrics, sorted."""
    return sorted(_METRICS)


def calc_metric(name: str, inputs: MetricInputs, **options: Any) -> MetricResult:
    """Metric ``name`` on ``inputs`` with its ``options``, timed; raises when it cannot be computed."""
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}; registered: {metric_names()}")
    metric = _METRICS[name]
    missing = [need for need in metric.needs if getattr(inputs, need) is None]
    if missing:
        raise ValueError(f"metric {name!r} cannot be computed without inputs {missing}")
    try:
        inspect.signature(metric.function).bind(inputs, **options)
    except TypeError as error:
        raise TypeError(f"metric {name!r}: {error}") from None
    started = time.perf_counter()
    measurement = metric.function(inputs, **options)
    seconds = time.perf_counter() - started
    return MetricResult(name=name, seconds=seconds, **vars(measurement))


@register_metric("fid", needs=("generated_features", "real_features"))
def _fid(inputs: MetricInputs) -> Measurement:
    generated, real = inputs.generated_features, inputs.real_features
    fid = frechet_distance(generated, real)
    return Measurement(values={"fid": fid}, num_generated=len(generated), num_real=len(real))


@register_metric("fid_inf", needs=("generated_features", "real_features"))
def _fid_inf(inputs: MetricInputs) -> Measurement:
    generated, real = inputs.generated_features, inputs.real_features
    fit = fid_infinity(generated, real, device=inputs.device)
    return Measurement(
        values={"fid_inf": fit.fid_inf, "fid_inf_slope": fit.slope},
        num_generated=len(generated),
        num_real=len(real),
        arrays={"fid_inf_sizes": fit.sizes, "fid_inf_fids": fit.fids},
    )


@register_metric("fidelity", needs=("generated_features", "real_features"))
def _fidelity(inputs: MetricInputs, *, kid_subset_size: int, kid_subsets: int, prc_neighborhood: int) -> Measurement:
    generated, real = inputs.generated_features, inputs.real_features
    values = fidelity_from_features(
        generated,
        real,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        prc_neighborhood=prc_neighborhood,
        device=inputs.device,
    )
    return Measurement(values=values, num_generated=len(generated), num_real=len(real))


@register_metric("inception_score", needs=("faces",))
def _inception_score(inputs: MetricInputs, *, splits: int) -> Measurement:
    score = inception_score(inputs.faces, splits=splits, device=inputs.device)
    return Measurement(
        values={"is_mean": score["is_mean"], "is_std": score["is_std"]},
        num_generated=len(inputs.faces),
        tags={"is_network": score["is_network"]},
    )


@register_metric("memorisation", needs=("generated_features", "real_features"))
def _memorisation(inputs: MetricInputs, *, quantile: float) -> Measurement:
    generated, real = inputs.generated_features, inputs.real_features
    report = memorisation_report(generated, real, quantile=quantile, device=inputs.device)
    return Measurement(
        values={
            "near_copy_share": report["near_copy_share"],
            "nn_distance_p50": report["nn_distance_p50"],
            "near_copy_threshold": report["threshold"],
        },
        num_generated=len(generated),
        num_real=len(real),
        arrays={"nn_index": report["nn_index"], "nn_distance": report["nn_distance"]},
    )


@register_metric("latency", needs=("generator",))
def _latency(inputs: MetricInputs, *, repeats: int, labels: np.ndarray | None = None) -> Measurement:
    latency = generation_latency(inputs.generator, repeats=repeats, device=resolve_device(inputs.device), labels=labels)
    return Measurement(
        values={"latency_p50_ms": latency["latency_p50_ms"], "latency_p95_ms": latency["latency_p95_ms"]},
        num_generated=repeats,
        tags={"latency_device": latency["latency_device"]},
    )
