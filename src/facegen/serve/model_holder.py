"""The served generator: loaded from ``models:/NAME@ALIAS``, watched, and swapped without failing requests.

- :func:`facegen.serve.loading.load_registered_generator` rebuilds one registered version.
- :class:`ModelHolder` keeps the served model as ONE immutable :class:`LoadedModel` reference. A reader grabs
  ``holder.current`` once and uses that object to the end of its request, so a swap (one attribute assignment,
  atomic in CPython) never changes a model under a request in flight. A background thread re-resolves the alias every
  ``poll_interval_s``; ``refresh()`` does the same on demand (``POST /admin/reload``). A new version is fully
  downloaded, rebuilt and warmed up before it is swapped in; when anything fails the old model keeps serving, the
  failure is logged and counted (``status()`` → ``/metrics``).
- Before a version is loaded it must pass :func:`facegen.gates.champion_acceptable` on its registry tags, the rule
  ``facegen approve`` applies: an alias moved in the MLflow UI to a version whose gates failed is refused (logged
  once per version, counted, reported by ``/readyz`` and ``/metrics``) and the old model keeps serving; with no model
  yet the service stays unready. The check is made when the alias moves: the version already served stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from facegen.devices import resolve_device
from facegen.gates import champion_acceptable
from facegen.registry.tracking import mlflow_client
from facegen.serve.loading import LoadedModel, load_registered_generator
from facegen.serve.settings import ServeSettings

logger = logging.getLogger("facegen.serve.model")


@dataclass(frozen=True)
class RefreshResult:
    """What one ``refresh`` did: the version before and after, whether it swapped, and the error if one occurred."""

    previous_version: str | None
    current_version: str | None
    alias_version: str | None
    changed: bool
    error: str | None = None  # a failed look-up or load, or the refusal of the alias's version


@dataclass(frozen=True)
class AliasTarget:
    """The version the alias points at, with its registry tags (what the champion rule reads)."""

    version: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    """The alias points at ``version``, which the champion rule refuses for ``reason``."""

    version: str
    reason: str
    since: float = field(default_factory=time.time)


@dataclass
class HolderStats:
    """Counters and timestamps the metrics endpoint reads (plain numbers; written under the holder's lock)."""

    load_successes: int = 0
    load_failures: int = 0
    resolve_failures: int = 0
    refusals: int = 0  # times the alias was found on a refused version (once per version it moved to)
    checks: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_check_at: float | None = None
    last_ok_at: float | None = None  # last refresh that ended with the alias's version served (swapped or unchanged)
    last_swap_at: float | None = None
    last_load_seconds: float | None = None


Loader = Callable[[str], LoadedModel]


class ModelHolder:
    """The served model and the thread that keeps it in step with the registry alias."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        model_name: str,
        alias: str,
        device: str = "auto",
        poll_interval_s: float = 10.0,
        warmup: bool = True,
        loader: Loader | None = None,
        resolver: Callable[[], AliasTarget] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.device = resolve_device(device)
        self.poll_interval_s = float(poll_interval_s)
        self.warmup = warmup
        self._loader = loader or self._load_from_registry
        self._resolver = resolver or self._resolve_alias
        self._current: LoadedModel | None = None
        self._refused: Refusal | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = HolderStats()

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> ModelHolder:
        return cls(
            tracking_uri=settings.resolved_tracking_uri(),
            model_name=settings.model_name,
            alias=settings.alias,
            device=settings.device,
            poll_interval_s=settings.poll_interval_s,
            warmup=settings.warmup,
        )

    # --- the served model ----------------------------------------------------------------------------------------

    @property
    def current(self) -> LoadedModel | None:
        """The model to use for one request: read once, keep the object (it never changes after a swap)."""
        return self._current

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def refused(self) -> Refusal | None:
        """The version the alias points at but that may not serve, while it does; None otherwise."""
        return self._refused

    def not_ready_reason(self) -> str:
        """Why no model serves (for ``/readyz`` and refused requests): a refused champion, else the last error."""
        refused = self._refused
        why = f"version {refused.version} refused: {refused.reason}" if refused else self.stats.last_error
        unready = f"no model loaded yet for {self.model_name}@{self.alias}"
        return f"{unready}: {why}" if why else unready

    # --- registry -------------------------------------------------------------------------------------------------

    def _resolve_alias(self) -> AliasTarget:
        version = mlflow_client(self.tracking_uri).get_model_version_by_alias(self.model_name, self.alias)
        return AliasTarget(str(version.version), dict(version.tags or {}))

    def _load_from_registry(self, version: str) -> LoadedModel:
        return load_registered_generator(
            self.tracking_uri, self.model_name, version, device=self.device, warmup=self.warmup
        )

    def _fail(self, message: str, *, resolve: bool) -> None:
        if resolve:
            self.stats.resolve_failures += 1
        else:
            self.stats.load_failures += 1
        self.stats.last_error = message
        self.stats.last_error_at = time.time()

    def _refuse(self, version: str, reason: str, served: str | None) -> str:
        """Record that the alias's ``version`` may not serve: counted once per version the alias moved to, logged
        then and when the reason changes (its tags were edited), not on every poll."""
        refused = self._refused
        if refused is None or refused.version != version:
            self.stats.refusals += 1
        if refused is None or (refused.version, refused.reason) != (version, reason):
            self._refused = Refusal(version, reason)
            logger.warning(
                "%s@%s points to version %s, refused as champion: %s; %s",
                self.model_name,
                self.alias,
                version,
                reason,
                f"still serving version {served}" if served else "serving nothing until an acceptable champion",
            )
        return f"{self.model_name}@{self.alias} points to version {version}, refused as champion: {reason}"

    def _lift_refusal(self, version: str) -> None:
        """The alias's ``version`` is acceptable (or already served): any refusal is over."""
        if self._refused is not None:
            logger.info(
                "%s@%s: refusal of version %s is over, the alias points to acceptable version %s",
                self.model_name,
                self.alias,
                self._refused.version,
                version,
            )
            self._refused = None

    def refresh(self, reason: str = "poll") -> RefreshResult:
        """Re-resolve the alias; load and swap in its version when it differs from the served one and the champion
        rule accepts it.

        Never raises for registry or load errors and never drops the served model: errors and refusals are logged,
        counted and returned in ``RefreshResult.error``.
        """
        with self._refresh_lock:
            previous = self._current
            previous_version = previous.version if previous else None
            self.stats.checks += 1
            self.stats.last_check_at = time.time()
            try:
                target = self._resolver()
            except Exception as error:  # noqa: BLE001 - any registry failure must leave the service serving
                message = f"cannot resolve {self.model_name}@{self.alias}: {type(error).__name__}: {error}"
                self._fail(message, resolve=True)
                logger.warning("%s (%s); still serving version %s", message, reason, previous_version)
                return RefreshResult(previous_version, previous_version, None, False, message)
            alias_version = target.version
            if previous is not None and previous.version == alias_version:
                self._lift_refusal(alias_version)
                self.stats.last_ok_at = time.time()
                return RefreshResult(previous_version, previous_version, alias_version, False)
            acceptance = champion_acceptable(target.tags)
            if not acceptance.ok:
                message = self._refuse(alias_version, acceptance.reason, previous_version)
                return RefreshResult(previous_version, previous_version, alias_version, False, message)
            self._lift_refusal(alias_version)
            logger.info(
                "%s@%s points to version %s (serving %s; accepted as champion: %s): loading (%s)",
                self.model_name,
                self.alias,
                alias_version,
                previous_version,
                acceptance.reason,
                reason,
            )
            started = time.perf_counter()
            try:
                loaded = self._loader(alias_version)
            except Exception as error:  # a broken version must not take the service down
                message = f"loading {self.model_name} version {alias_version} failed: {type(error).__name__}: {error}"
                self._fail(message, resolve=False)
                logger.exception("%s; still serving version %s", message, previous_version)
                return RefreshResult(previous_version, previous_version, alias_version, False, message)
            self.stats.last_load_seconds = time.perf_counter() - started
            self._current = loaded  # the swap: one reference assignment
            self.stats.load_successes += 1
            self.stats.last_swap_at = self.stats.last_ok_at = time.time()
            logger.info(
                "now serving %s version %s (%s, %d×%d, %s) in place of %s; loaded in %.2f s",
                loaded.name,
                loaded.version,
                loaded.architecture,
                loaded.resolution,
                loaded.resolution,
                loaded.device,
                previous_version,
                self.stats.last_load_seconds,
            )
            return RefreshResult(previous_version, loaded.version, alias_version, True)

    # --- the watcher ----------------------------------------------------------------------------------------------

    def start(self, *, watch: bool = True) -> RefreshResult | None:
        """Load the alias's version now (errors tolerated: the service starts unready) and start the poller."""
        if self._thread is not None:
            return None
        result = self.refresh(reason="start")
        if watch:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="facegen-alias-poller", daemon=True)
            self._thread.start()
        return result

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh(reason="poll")
            except Exception:  # refresh already handles registry errors; keep the poller alive
                logger.exception("alias poll failed unexpectedly")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def status(self) -> dict[str, Any]:
        """A snapshot for health and metrics endpoints."""
        model = self._current
        return {
            "model_name": self.model_name,
            "alias": self.alias,
            "model_version": model.version if model else None,
            "architecture": model.architecture if model else None,
            "resolution": model.resolution if model else None,
            "device": str(self.device),
            "poll_interval_s": self.poll_interval_s,
            "refused": self._refused,
            "stats": self.stats,
        }
