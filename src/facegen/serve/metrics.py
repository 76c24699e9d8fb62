"""Prometheus metrics of the service, in a registry of its own (one per app, so tests can run several apps).

Request side (ASGI middleware): ``facegen_requests_total{endpoint,method,status}``,
``facegen_request_errors_total{endpoint,kind}`` (kind: client = 4xx, server = 5xx),
``facegen_request_latency_seconds{endpoint}`` (histogram). Generator side: ``facegen_generation_batch_seconds`` and
``facegen_generation_batch_faces`` (one observation per forward pass), ``facegen_faces_generated_total``,
``facegen_feedback_total``. Model side, read from the :class:`ModelHolder` at scrape time:
``facegen_model_info{model_name,alias,version,architecture,resolution,device}`` (1 for the served model),
``facegen_model_version`` (the served version as a number, 0 when none), ``facegen_model_ready``,
``facegen_model_loads_total{result}`` (success / failure), ``facegen_model_resolve_failures_total``,
``facegen_model_load_error`` (1 while the last attempt failed, with the message as a label),
``facegen_model_last_swap_timestamp_seconds`` and ``facegen_model_last_check_timestamp_seconds``. The gate
interlock: ``facegen_champion_refused{version,reason}`` (1 while the alias points at a version the champion rule
refuses; the served model, if any, stays) and ``facegen_champion_refusals_total`` (once per refused version moved to).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from facegen.serve.model_holder import ModelHolder

LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _HolderCollector(Collector):
    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterable[Metric]:
        status = self.holder.status()
        stats = status["stats"]
        version = status["model_version"]
        info = GaugeMetricFamily(
            "facegen_model_info",
            "The served model (value 1); labels name its registry version",
            labels=["model_name", "alias", "version", "architecture", "resolution", "device"],
        )
        if version is not None:
            info.add_metric(
                [
                    status["model_name"],
                    status["alias"],
                    version,
                    status["architecture"],
                    str(status["resolution"]),
                    status["device"],
                ],
                1,
            )
        yield info
        yield GaugeMetricFamily(
            "facegen_model_version",
            "Registry version of the served model (0: none loaded)",
            value=float(version) if version and version.isdigit() else 0.0,
        )
        yield GaugeMetricFamily("facegen_model_ready", "1 when a model is loaded", value=1.0 if version else 0.0)
        loads = CounterMetricFamily("facegen_model_loads", "Model loads by result", labels=["result"])
        loads.add_metric(["success"], stats.load_successes)
        loads.add_metric(["failure"], stats.load_failures)
        yield loads
        yield CounterMetricFamily(
            "facegen_model_resolve_failures",
            "Failed look-ups of the alias in the registry",
            value=stats.resolve_failures,
        )
        failing = stats.last_error is not None and (stats.last_ok_at or 0) < (stats.last_error_at or 0)
        error = GaugeMetricFamily(
            "facegen_model_load_error",
            "1 when the last load or alias look-up failed (message in the label)",
            labels=["message"],
        )
        error.add_metric([(stats.last_error or "")[:300] if failing else ""], 1.0 if failing else 0.0)
        yield error
        refused = GaugeMetricFamily(
            "facegen_champion_refused",
            "1 while the alias points at a version refused as champion (its gates failed, no forced approval)",
            labels=["version", "reason"],
        )
        refusal = status["refused"]
        refused.add_metric([refusal.version, refusal.reason[:300]] if refusal else ["", ""], 1.0 if refusal else 0.0)
        yield refused
        yield CounterMetricFamily(
            "facegen_champion_refusals",
            "Versions the alias moved to that were refused as champion",
            value=stats.refusals,
        )
        yield GaugeMetricFamily(
            "facegen_model_last_swap_timestamp_seconds",
            "When the served model last changed (Unix time)",
            value=stats.last_swap_at or 0.0,
        )
        yield GaugeMetricFamily(
            "facegen_model_last_check_timestamp_seconds",
            "When the alias was last checked (Unix time)",
            value=stats.last_check_at or 0.0,
        )


class ServiceMetrics:
    """All metrics of one app instance."""

    def __init__(self, holder: ModelHolder) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "facegen_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "facegen_request_errors",
            "HTTP requests answered with an error (client: 4xx, server: 5xx)",
            ["endpoint", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facegen_request_latency_seconds",
            "Time from request to the end of the response",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "facegen_generation_batch_seconds",
            "Generator forward pass (one coalesced batch) in seconds",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_faces = Histogram(
            "facegen_generation_batch_faces",
            "Faces per generator forward pass",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.faces = Counter("facegen_faces_generated", "Faces generated", registry=self.registry)
        self.feedback = Counter("facegen_feedback", "Ratings stored", ["rating"], registry=self.registry)
        self.registry.register(_HolderCollector(holder))

    def observe_batch(self, faces: int, seconds: float) -> None:
        self.batch_seconds.observe(seconds)
        self.batch_faces.observe(faces)
        self.faces.inc(faces)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, "server" if status >= 500 else "client").inc()
        self.latency.labels(endpoint).observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route (unknown paths as ``other``)."""

    def __init__(self, app, metrics: ServiceMetrics, endpoints: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in self.endpoints else "other"
        status = 500
        started = time.perf_counter()

        async def send_and_record_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            self.metrics.observe_request(endpoint, scope.get("method", ""), status, time.perf_counter() - started)
