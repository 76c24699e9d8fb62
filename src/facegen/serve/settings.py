"""Every knob of the face-generator service in one object, read from ``configs/serve.yaml`` plus the environment.

Precedence (highest first): an environment variable ``FACEGEN_SERVE_<FIELD>`` (e.g. ``FACEGEN_SERVE_POLL_INTERVAL_S=5``,
lists comma-separated: ``FACEGEN_SERVE_ALLOWED_SIZES=64,256``), the YAML file, the defaults below. The tracking URI
falls back to :func:`facegen.registry.tracking.default_tracking_uri` (``$MLFLOW_TRACKING_URI``, else the local store)
when neither sets it. The admin token itself is never in a file: ``admin_token_env`` names the environment variable
that holds it (``FACEGEN_ADMIN_TOKEN`` by default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facegen.paths import facegen_home
from facegen.provenance.credentials import ProvenanceConfig
from facegen.registry.names import CHAMPION_ALIAS, GENERATOR_MODEL_NAME

#: Prefix of the environment variables that override settings.
ENV_PREFIX = "FACEGEN_SERVE_"
#: Where ``facegen serve`` looks for its config when none is given.
DEFAULT_CONFIG_PATH = Path("configs/serve.yaml")
#: Largest face side the service will ever produce, whatever the config says (memory and CPU bound).
MAX_SIZE_LIMIT = 2048


class ServeSettings(BaseModel):
    """Settings of ``facegen serve``; see ``configs/serve.yaml`` for the documented defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else the local store under $FACEGEN_HOME
    model_name: str = GENERATOR_MODEL_NAME
    alias: str = CHAMPION_ALIAS
    poll_interval_s: float = Field(10.0, gt=0, le=3600)  # how often the alias is re-resolved
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    torch_threads: int | None = Field(None, ge=1, le=256)  # intra-op threads of the generator; None: torch's default
    allowed_sizes: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # output sides a client may ask for
    default_size: int = 256
    default_truncation: float = Field(1.0, ge=0.0, le=1.0)  # psi; 1.0 = no truncation
    max_batch: int = Field(16, ge=1, le=256)  # faces per POST /generate
    max_forward_batch: int = Field(32, ge=1, le=1024)  # faces per generator forward pass (coalesced requests)
    jpeg_quality: int = Field(90, ge=1, le=100)
    png_compress_level: int = Field(1, ge=0, le=9)  # zlib level: 1 is ~2× faster than 6 for faces
    feedback_db: Path | None = None  # None: <FACEGEN_HOME>/serve/feedback.db
    feedback_export_min_rating: float = Field(4.0, ge=1, le=5)  # default threshold of `facegen feedback-export`
    admin_token_env: str = "FACEGEN_ADMIN_TOKEN"
    warmup: bool = True  # run one forward pass on a freshly loaded model before it serves
    provenance: ProvenanceConfig = ProvenanceConfig()  # C2PA signing + watermark of every face (fails closed)

    @field_validator("allowed_sizes", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("allowed_sizes")
    @classmethod
    def _check_sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("allowed_sizes must name at least one size")
        bad = [size for size in value if not 8 <= size <= MAX_SIZE_LIMIT]
        if bad:
            raise ValueError(f"allowed_sizes must lie in [8, {MAX_SIZE_LIMIT}], got {bad}")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _default_size_allowed(self) -> ServeSettings:
        if self.default_size not in self.allowed_sizes:
            raise ValueError(f"default_size {self.default_size} is not one of allowed_sizes {list(self.allowed_sizes)}")
        if self.max_forward_batch < self.max_batch:
            raise ValueError(f"max_forward_batch ({self.max_forward_batch}) must be >= max_batch ({self.max_batch})")
        return self

    def resolved_tracking_uri(self) -> str:
        """The tracking URI to use: the configured one, else facegen's default."""
        from facegen.registry.tracking import default_tracking_uri

        return self.tracking_uri or default_tracking_uri()

    def resolved_feedback_db(self) -> Path:
        """Path of the SQLite feedback store (default under ``$FACEGEN_HOME/serve/``)."""
        return Path(self.feedback_db) if self.feedback_db else facegen_home() / "serve" / "feedback.db"

    def admin_token(self) -> str | None:
        """The admin bearer token from the environment; None (admin endpoints refuse everything) when unset."""
        token = os.environ.get(self.admin_token_env, "").strip()
        return token or None

    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"


def _env_overrides(environ: dict[str, str]) -> dict[str, str]:
    fields = set(ServeSettings.model_fields)
    overrides = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key.removeprefix(ENV_PREFIX).lower()
            if name not in fields:
                raise ValueError(f"{key} does not name a setting; known: {sorted(fields)}")
            overrides[name] = value
    return overrides


def load_settings(
    path: str | Path | None = None, *, environ: dict[str, str] | None = None, **overrides: Any
) -> ServeSettings:
    """Settings from the YAML file ``path`` (when given; a missing file is an error), then env, then ``overrides``.

    With ``path=None`` the default ``configs/serve.yaml`` is read when it exists, else the built-in defaults.
    """
    data: dict[str, Any] = {}
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"serve config {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of settings, got {type(loaded).__name__}")
        data.update(loaded)
    data.update(_env_overrides(dict(os.environ if environ is None else environ)))
    data.update({key: value for key, value in overrides.items() if value is not None})
    return ServeSettings.model_validate(data)
