"""The attribute model on disk: ``attributes.pt`` (state dict, loaded with ``weights_only=True``) + ``attributes.json``.

The spec records the input size, the heads and their classes, and free-form facts (training config, metrics), so
a bundle is self-describing and loading never unpickles code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from facegen.attributes_model.network import HEADS, AttributeNet

WEIGHTS_FILE = "attributes.pt"
SPEC_FILE = "attributes.json"
FORMAT_VERSION = 1


def save_bundle(directory: Path, model: AttributeNet, *, input_size: int, extra: dict[str, Any] | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save(state, directory / WEIGHTS_FILE)
    spec = {
        "format_version": FORMAT_VERSION,
        "architecture": "mobilenet_v2",
        "input_size": input_size,
        "heads": {name: list(classes) for name, classes in HEADS.items()},
        **(extra or {}),
    }
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, default=str))
    return directory


def load_bundle(directory: Path, device: str | torch.device = "cpu") -> tuple[AttributeNet, dict[str, Any]]:
    directory = Path(directory)
    spec = json.loads((directory / SPEC_FILE).read_text())
    if spec.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported attribute bundle format {spec.get('format_version')!r} in {directory}")
    heads = {name: tuple(classes) for name, classes in spec["heads"].items()}
    if heads != HEADS:
        raise ValueError(f"bundle {directory} has heads {heads}, this code expects {HEADS}")
    model = AttributeNet(pretrained=False)
    model.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.to(device).eval(), spec
