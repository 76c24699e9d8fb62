"""The brief's DCGAN, kept as facegen's baseline architecture.

Generator: a latent vector (100-d, seen as 1×1×100) through ConvTranspose2d → norm → ReLU upsampling blocks to a Tanh
N×N×3 image. At N=64 with ``width=64`` the feature maps are exactly the brief's 4×4×1024 → 8×8×512 → 16×16×256 →
32×32×128 → 64×64×3. Depth follows N: one block per doubling from 4×4 to N×N.

Discriminator: Conv2d → norm → LeakyReLU downsampling blocks to 4×4, then a fully connected layer to one logit; the
sigmoid of that logit is the probability that the image is real (``probability``). Training applies the sigmoid
inside ``binary_cross_entropy_with_logits`` for numerical stability.

Conditional variant (``conditioning=["gender", ...]``, see :mod:`facegen.models.conditioning`): G appends one learned
embedding per attribute to z (so the brief's 1×1×100 input becomes 1×1×(100 + K·label_embed_dim)); D adds a
projection term on its flattened 4×4 features, and with ``class_heads=True`` AC-GAN class heads on the same
features (TrainingConfig ``aux_classifier_weight``). Unconditional models are exactly the brief's figures.

Truncation is in z: ``psi · z`` pulls a latent toward the mean latent 0 of N(0, I).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facegen.models.conditioning import (
    ClassHeads,
    DiscriminatorOutput,
    LabelEmbedding,
    ProjectionHead,
    check_labels,
    discriminator_output,
    label_dims_for,
    z_space_input,
)
from facegen.models.resolution import check_resolution

NORMALISATIONS = ("batch", "instance", "layer", "group")
MAX_RESOLUTION = 1024  # the brief's target side; one block per doubling builds at any power of two up to it


def _channels(resolution: int, at: int, width: int, max_channels: int) -> int:
    """Channels of the feature map at spatial size ``at``: ``width`` × N / at, capped (the brief's schedule)."""
    return min(max_channels, width * resolution // at)


def make_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer the brief compares: batch, instance, layer (over C×H×W) or group (32 groups max)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {NORMALISATIONS}")


class DCGANGenerator(nn.Module):
    """Latent vector (+ attribute labels when conditional) → N×N×3 image in [-1, 1]."""

    def __init__(
        self,
        resolution: int = 64,  # output side N, a power of two in [8, 1024]
        latent_dim: int = 100,  # size of the noise vector z
        width: int = 64,  # channel multiplier: 64 gives the brief's 1024..128 channels at N=64
        max_channels: int = 1024,  # cap for large N
        norm: str = "batch",  # batch | instance | layer | group
        conditioning: list[str] | None = None,  # attributes to condition on, e.g. ["gender", "age_bin"]
        label_embed_dim: int = 16,  # size of each attribute's embedding appended to z
    ) -> None:
        super().__init__()
        log2 = check_resolution(resolution, "dcgan", MAX_RESOLUTION)
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        self.embed = LabelEmbedding(self.label_dims, label_embed_dim) if self.conditional else None
        input_dim = latent_dim + (self.embed.out_dim if self.embed is not None else 0)
        channels = _channels(resolution, 4, width, max_channels)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(input_dim, channels, kernel_size=4, stride=1, padding=0, bias=False),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
        ]
        for size_log2 in range(2, log2 - 1):
            out_channels = _channels(resolution, 2 ** (size_log2 + 1), width, max_channels)
            layers += [
                nn.ConvTranspose2d(channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
                make_norm(norm, out_channels),
                nn.ReLU(inplace=True),
            ]
            channels = out_channels
        layers += [nn.ConvTranspose2d(channels, 3, kernel_size=4, stride=2, padding=1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(
        self,
        z: torch.Tensor,  # B×latent_dim standard-normal latents
        labels: torch.Tensor | None = None,  # B×K label indices (−1 = unspecified); required iff conditional
        truncation_psi: float | torch.Tensor = 1.0,  # 1 = untruncated, 0 = the mean latent; a float or one per sample
    ) -> torch.Tensor:
        x = z_space_input(z, labels, truncation_psi, self.latent_dim, self.label_dims, self.embed)
        image = self.net(x[:, :, None, None])
        assert image.shape[1:] == (3, self.resolution, self.resolution)
        return image


class DCGANDiscriminator(nn.Module):
    """N×N×3 image in [-1, 1] (+ labels when conditional) → one logit per image (real vs generated)."""

    def __init__(
        self,
        resolution: int = 64,  # input side N, a power of two in [8, 1024]
        width: int = 64,  # channel multiplier: 64 channels after the first block
        max_channels: int = 1024,  # cap for large N
        norm: str = "batch",  # batch | instance | layer | group (not after the first block, as in DCGAN)
        conditioning: list[str] | None = None,  # attributes to condition on (projection discriminator)
        class_heads: bool = False,  # AC-GAN class heads on the 4×4 features (conditional models only)
    ) -> None:
        super().__init__()
        log2 = check_resolution(resolution, "dcgan", MAX_RESOLUTION)
        self.resolution = resolution
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        channels = _channels(resolution, resolution, width, max_channels)
        layers: list[nn.Module] = [
            nn.Conv2d(3, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for size_log2 in range(log2 - 1, 2, -1):
            out_channels = _channels(resolution, 2 ** (size_log2 - 1), width // 2, max_channels)
            layers += [
                nn.Conv2d(channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
                make_norm(norm, out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * 4 * 4, 1)
        self.projection = ProjectionHead(self.label_dims, channels * 4 * 4) if self.conditional else None
        self.class_heads = ClassHeads(self.label_dims, channels * 4 * 4) if class_heads else None
        self.apply(init_dcgan_weights)

    def forward(
        self,
        image: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_classes: bool = False,  # also return the class heads' logits per attribute
    ) -> DiscriminatorOutput:
        assert image.shape[1:] == (3, self.resolution, self.resolution), f"got {tuple(image.shape)}"
        check_labels(labels, self.label_dims, len(image))
        features = self.features(image).flatten(1)
        logits = self.classifier(features).squeeze(1)
        return discriminator_output(logits, features, labels, self.projection, self.class_heads, return_classes)

    def probability(self, image: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Sigmoid probability that each image is real."""
        return torch.sigmoid(self(image, labels))


BRIEF_RESOLUTIONS = (32, 64)


def _check_brief_resolution(resolution: int) -> None:
    if resolution not in BRIEF_RESOLUTIONS:
        raise ValueError(f"dcgan_brief is defined at {BRIEF_RESOLUTIONS} pixels only, got {resolution}")


class BriefDCGANGenerator(DCGANGenerator):
    """The brief's generator exactly: 100-d noise → 4²×1024 → 8²×512 → 16²×256 → 32²×128 → 64²×3, ConvTranspose2d +
    BatchNorm2d + ReLU, Tanh last. At 32² its first block (the 1024 channels) is dropped: 4²×512 → … → 32²×3."""

    def __init__(
        self,
        resolution: int = 64,  # 64, or 32 (first block dropped)
        conditioning: list[str] | None = None,  # facegen's conditional variant (labels appended to z)
        label_embed_dim: int = 16,
    ) -> None:
        _check_brief_resolution(resolution)
        super().__init__(resolution, 100, 64, 1024, "batch", conditioning, label_embed_dim)


class BriefDCGANDiscriminator(nn.Module):
    """The brief's discriminator exactly: 64²×3 → 32²×128 → 16²×256 → 8²×512 → 4²×1024, each block a stride-2 Conv2d +
    BatchNorm2d + ReLU, then a fully connected layer to one logit. The brief's sigmoid is applied by the loss
    (``binary_cross_entropy_with_logits`` / softplus, numerically stable) or by ``probability``. At 32² the first
    block is dropped: 32²×3 → 16²×256 → 8²×512 → 4²×1024.
    """

    def __init__(
        self,
        resolution: int = 64,  # 64, or 32 (first block dropped)
        conditioning: list[str] | None = None,  # facegen's conditional variant (projection term on the features)
        class_heads: bool = False,  # AC-GAN class heads on the 4×4 features (conditional models only)
    ) -> None:
        super().__init__()
        _check_brief_resolution(resolution)
        self.resolution = resolution
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        widths = [128, 256, 512, 1024][-(int(math.log2(resolution)) - 2) :]
        layers: list[nn.Module] = []
        for in_channels, out_channels in zip([3, *widths[:-1]], widths):
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1024 * 4 * 4, 1)
        self.projection = ProjectionHead(self.label_dims, 1024 * 4 * 4) if self.conditional else None
        self.class_heads = ClassHeads(self.label_dims, 1024 * 4 * 4) if class_heads else None
        self.apply(init_dcgan_weights)

    forward = DCGANDiscriminator.forward
    probability = DCGANDiscriminator.probability


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
