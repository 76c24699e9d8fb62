"""A trained generator on disk: weights plus everything needed to rebuild it, and nothing executable.

Layout of a bundle directory:
- ``generator.pt``: the state dict (loads with ``torch.load(weights_only=True)``);
- ``generator.json``: ``{"architecture": name, "model": {...model config...}}``.
The same bundle is a ZenML artifact, an MLflow model artifact and what the service loads.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facegen.models.registry import build_generator

WEIGHTS_FILE = "generator.pt"
SPEC_FILE = "generator.json"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write with ``torch.save`` to a temp file in the same directory, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        torch.save(obj, temp_name)
        os.chmod(
            temp_name, 0o644
        )  # mkstemp's 0600 would make artifacts unreadable to a service running as another user
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def save_generator_bundle(
    directory: Path, architecture: str, model_config: dict[str, Any], generator: nn.Module
) -> Path:
    """Write a generator bundle (weights + spec) into ``directory`` and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in generator.state_dict().items()}
    atomic_torch_save(state, directory / WEIGHTS_FILE)
    spec = {"architecture": architecture, "model": model_config}
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True))
    return directory


def read_bundle_spec(directory: Path) -> dict[str, Any]:
    """The architecture name and model config of a bundle."""
    spec_path = Path(directory) / SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"{directory} is not a generator bundle: {SPEC_FILE} is missing")
    return json.loads(spec_path.read_text())


def load_generator_bundle(directory: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator of a bundle in eval mode, weights loaded safely (``weights_only=True``)."""
    spec = read_bundle_spec(directory)
    generator = build_generator(spec["architecture"], spec["model"])
    state = torch.load(Path(directory) / WEIGHTS_FILE, map_location=device, weights_only=True)
    generator.load_state_dict(state)
    return generator.to(device).eval()
