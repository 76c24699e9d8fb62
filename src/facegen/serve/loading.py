"""One registered generator version, rebuilt from MLflow for serving: :func:`load_registered_generator`.

It downloads the version's pyfunc files and rebuilds the generator from its ``generator_bundle`` artifact directly
(weights with ``weights_only=True``, no cloudpickle of the pyfunc class is executed), which is what
``GeneratorPyfunc.load_context`` does, minus MLflow's pyfunc machinery. :class:`facegen.serve.model_holder.ModelHolder`
decides which version to load and when.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facegen.models.bundle import load_generator_bundle, read_bundle_spec
from facegen.registry.generator_model import BUNDLE_ARTIFACT
from facegen.registry.tracking import mlflow_client

# MLflow draws a tqdm bar per download otherwise (in a server's log, on every swap).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One registered generator version, ready to sample. Immutable: swapped as a whole, never edited."""

    name: str
    version: str
    generator: nn.Module
    architecture: str
    model_config: dict[str, Any]
    device: torch.device
    run_id: str | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def resolution(self) -> int:
        return int(self.generator.resolution)

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    @property
    def conditional_attributes(self) -> tuple[str, ...]:
        """Attributes a conditional generator is conditioned on (its ``label_dims``); empty for unconditional ones."""
        return tuple(self.generator.label_dims)


def bundle_dir_of(model_dir: Path) -> Path:
    """The generator bundle inside a downloaded pyfunc model directory (from its MLmodel file)."""
    from mlflow.models import Model

    mlmodel = Path(model_dir) / "MLmodel"
    if not mlmodel.is_file():
        raise ValueError(f"{model_dir} is not an MLflow model: MLmodel is missing")
    flavor = Model.load(str(mlmodel)).flavors.get("python_function", {})
    artifacts = flavor.get("artifacts") or {}
    if BUNDLE_ARTIFACT not in artifacts:
        raise ValueError(
            f"the model in {model_dir} is not a facegen generator: its pyfunc has no {BUNDLE_ARTIFACT!r} artifact "
            f"(artifacts: {sorted(artifacts)})"
        )
    return Path(model_dir) / artifacts[BUNDLE_ARTIFACT]["path"]


def check_generator(generator: nn.Module, device: torch.device) -> None:
    """One forward pass on a fixed latent: right output shape, finite values (a warm-up that also validates)."""
    attributes = len(generator.label_dims)  # a conditional generator gets every attribute unspecified (−1)
    with torch.inference_mode():
        z = torch.zeros(1, generator.latent_dim, device=device)
        labels = torch.full((1, attributes), -1, dtype=torch.long, device=device) if attributes else None
        out = generator(z, labels)
    expected = (1, 3, generator.resolution, generator.resolution)
    if tuple(out.shape) != expected:
        raise ValueError(f"generator produced {tuple(out.shape)}, expected {expected}")
    if not torch.isfinite(out).all():
        raise ValueError("generator produced non-finite values")


def load_registered_generator(
    tracking_uri: str, name: str, version: str, *, device: str | torch.device = "cpu", warmup: bool = True
) -> LoadedModel:
    """Download version ``version`` of registered model ``name`` and rebuild its generator on ``device``."""
    import mlflow

    client = mlflow_client(tracking_uri)
    model_version = client.get_model_version(name, str(version))
    download_uri = client.get_model_version_download_uri(name, str(version))
    device = torch.device(device)
    with tempfile.TemporaryDirectory(prefix="facegen-serve-") as scratch:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=download_uri, dst_path=scratch, tracking_uri=tracking_uri)
        )
        bundle = bundle_dir_of(local)
        spec = read_bundle_spec(bundle)
        generator = load_generator_bundle(bundle, device=device)
    if warmup:
        check_generator(generator, device)
    return LoadedModel(
        name=name,
        version=str(model_version.version),
        generator=generator,
        architecture=str(spec["architecture"]),
        model_config=dict(spec.get("model") or {}),
        device=device,
        run_id=model_version.run_id,
    )
