"""R3GAN's generator and discriminator (Huang, Gokaslan, Kuleshov, Tompkin, "The GAN is dead; long live the GAN! A
Modern GAN Baseline", NeurIPS 2024), config E of their roadmap, in plain PyTorch.

What the paper keeps and drops (Sec. 3): no mapping network, style injection, noise inputs, minibatch-std, progressive
growing or normalisation layers; G and D are mirror-image ResNets and the loss (RpGAN + R1 + R2,
:mod:`facegen.models.losses` ``rpgan``) is what keeps training stable.

- Stages (Sec. 3.3, config D → E): one per resolution from 4×4 to R×R; a stage is a transition layer and
  ``blocks_per_stage`` residual blocks. G's first transition is a learned 4×4 basis modulated by a linear map of z
  ("generative basis"); D's last is a depthwise 4×4 conv + linear ("discriminative basis"). Between stages channels
  change with a 1×1 conv and the resolution with a fixed [1, 2, 1] filter (bilinear resampling, no transposed or
  strided convolutions).
- Residual block (Sec. 3.4, config E: "bottleneck modernisation"): an inverted bottleneck 1×1 (C → e·C) → grouped 3×3
  (groups of ``group_width`` channels, ResNeXt's cardinality) → 1×1 (e·C → C), leaky ReLU with a learned bias before
  the two inner convolutions, and an identity shortcut: x + F(x).
- No normalisation (Sec. 3.3): fix-up initialisation (Zhang et al. 2019) keeps the signal bounded instead. Every
  convolution is initialised N(0, gain²/fan_in); the last layer of each residual branch starts at zero, so every
  block starts as the identity, and the inner layers' gain is scaled by L^(−1/(2m−2)) for L residual blocks of m = 3
  layers, so the sum of L branches stays O(1) once they learn.
- G's output is the linear 1×1 "aggregation" to RGB, unclamped while training (gradients outside [-1, 1] stay alive,
  D sees and penalises such pixels); eval mode clamps to [-1, 1] as every facegen generator does for sampling.

Conditional variant (facegen's interface, :mod:`facegen.models.conditioning`): G concatenates a label embedding of
``latent_dim`` channels to z (the paper's ``ConditionEmbeddingDimension = NoiseDimension``); D projects its final
feature vector on a label embedding (the paper's projection head), here added to an unconditional logit because
facegen labels may be −1 ("unspecified"), whose projection is zero. Truncation is in z (there is no W space).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))  # keeps the second moment through a leaky ReLU (He et al.)
LAYERS_PER_BLOCK = 3  # m: the 1×1, grouped 3×3 and 1×1 convolutions of a residual branch
MAX_RESOLUTION = 1024  # the brief's target side, as for the other architectures; nothing larger is built here


def _stage_resolutions(resolution: int) -> list[int]:
    """4, 8, …, R for a power of two R in [8, 1024]; anything else is a ValueError."""
    return [2**i for i in range(2, check_resolution(resolution, "r3gan", MAX_RESOLUTION) + 1)]


def _channels(
    resolutions: list[int], channel_base: int, channel_max: int, expansion: int, group_width: int
) -> dict[int, int]:
    """Channels per stage, ``min(channel_base // r, channel_max)`` (the paper's FFHQ widths: 768 up to 32², then
    halving); each stage's expanded width must split into groups of ``group_width`` channels."""
    channels = {res: min(channel_base // res, channel_max) for res in resolutions}
    for res, count in channels.items():
        if count < 1 or (count * expansion) % group_width:
            raise ValueError(
                f"r3gan: {count} channels at {res}×{res} (channel_base={channel_base}, channel_max={channel_max}) "
                f"× expansion {expansion} do not split into groups of group_width={group_width}"
            )
    return channels


def _msr_init(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    """He ("MSR") init N(0, gain²/fan_in), the paper's fix-up scheme building block; gain 0 zeroes the layer."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    return layer


def _conv(in_channels: int, out_channels: int, kernel_size: int, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
    return _msr_init(conv, gain)


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b) with a learned per-channel bias: the convolutions carry no biases (the paper's ``bias_act``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], LRELU_SLOPE)


class ResidualBlock(nn.Module):
    """x + 1×1 → bias-act → grouped 3×3 → bias-act → 1×1 (Sec. 3.4, inverted bottleneck), fix-up initialised."""

    def __init__(self, channels: int, expansion: int, group_width: int, total_blocks: int) -> None:
        super().__init__()
        expanded = channels * expansion
        gain = LRELU_GAIN * total_blocks ** (-1 / (2 * LAYERS_PER_BLOCK - 2))
        self.expand = _conv(channels, expanded, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(expanded)
        self.grouped = _conv(expanded, expanded, 3, groups=expanded // group_width, gain=gain)
        self.act2 = BiasedLeakyReLU(expanded)
        self.project = _conv(expanded, channels, 1, gain=0.0)  # fix-up: the branch starts at zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.act2(self.grouped(self.act1(self.expand(x)))))


def resampling_kernel(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The separable [1, 2, 1] filter, normalised to sum 1 (the paper's ``ResamplingFilter``)."""
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=dtype)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


class Resample(nn.Module):
    """×2 up (zero-insertion + filter, i.e. bilinear) or ×2 down (filter + stride 2) with a 1×1 channel change.

    Up changes channels before resampling and down after, so the resampling runs on the narrower side. Depthwise
    convolutions with a fixed filter: ordinary ops, twice differentiable (R1 and R2 differentiate D's gradient).
    """

    def __init__(self, in_channels: int, out_channels: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.linear = _conv(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.register_buffer("kernel", resampling_kernel()[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up and self.linear is not None:
            x = self.linear(x)
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, 1, 3, 3)
        if self.up:  # gain 4 keeps a constant image constant after zero insertion
            x = F.conv_transpose2d(x, kernel * 4, stride=2, padding=1, output_padding=1, groups=channels)
        else:
            x = F.conv2d(x, kernel, stride=2, padding=1, groups=channels)
            if self.linear is not None:
                x = self.linear(x)
        return x


class GenerativeBasis(nn.Module):
    """G's first layer: a learned C×4×4 basis scaled per channel by a linear map of the input vector (Sec. 3.3)."""

    def __init__(self, in_features: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = _msr_init(nn.Linear(in_features, channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basis[None].to(x.dtype) * self.linear(x)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """D's last layer: a depthwise 4×4 conv to one value per channel, then a linear map to the feature vector."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.basis = _msr_init(nn.Conv2d(channels, channels, 4, groups=channels, bias=False))
        self.linear = _msr_init(nn.Linear(channels, out_features, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.basis(x).flatten(1))


class R3GANGenerator(nn.Module):
    """z (+ attribute labels when conditional) → R×R×3 image; see the module docstring."""

    def __init__(
        self,
        resolution: int = 64,  # output side R, a power of two in [8, 1024]
        latent_dim: int = 64,  # z size (the paper's NoiseDimension for FFHQ and CIFAR-10)
        conditioning: list[str] | None = None,  # attributes to condition on, e.g. ["gender", "age_bin", "ethnicity"]
        channel_base: int = 24576,  # channels at resolution r: min(channel_base // r, channel_max) (paper: 768 to 32²)
        channel_max: int = 768,
        blocks_per_stage: int = 2,  # residual blocks per resolution (paper: 2)
        expansion: int = 2,  # inverted-bottleneck expansion factor (paper: 2)
        group_width: int = 16,  # channels per group of the 3×3 convolution (paper: 16, e.g. 1536 / 96 groups)
    ) -> None:
        super().__init__()
        if blocks_per_stage < 1 or expansion < 1 or group_width < 1:
            raise ValueError("r3gan: blocks_per_stage, expansion and group_width must be >= 1")
        resolutions = _stage_resolutions(resolution)
        channels = _channels(resolutions, channel_base, channel_max, expansion, group_width)
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        self.embed = LabelEmbedding(self.label_dims, latent_dim, reduce="sum") if self.conditional else None
        total_blocks = blocks_per_stage * len(resolutions)
        self.stages = nn.ModuleList()
        previous = None
        for res in resolutions:
            transition = (
                GenerativeBasis(latent_dim * (2 if self.conditional else 1), channels[res])
                if previous is None
                else Resample(channels[previous], channels[res], up=True)
            )
            blocks = [
                ResidualBlock(channels[res], expansion, group_width, total_blocks) for _ in range(blocks_per_stage)
            ]
            self.stages.append(nn.Sequential(transition, *blocks))
            previous = res
        self.stage_shapes = [(channels[res], res, res) for res in resolutions]
        self.to_rgb = _conv(channels[resolution], 3, 1)  # the paper's aggregation layer

    def forward(
        self,
        z: torch.Tensor,  # B×latent_dim standard-normal latents
        labels: torch.Tensor | None = None,  # B×K label indices (−1 = unspecified); required iff conditional
        truncation_psi: float | torch.Tensor = 1.0,  # 1 = untruncated, 0 = the mean latent; a float or one per sample
    ) -> torch.Tensor:
        x = z_space_input(z, labels, truncation_psi, self.latent_dim, self.label_dims, self.embed)
        for stage, shape in zip(self.stages, self.stage_shapes):
            x = stage(x)
            assert x.shape[1:] == shape, f"stage output {tuple(x.shape[1:])}, expected {shape}"
        image = self.to_rgb(x)
        assert image.shape[1:] == (3, self.resolution, self.resolution)
        return image if self.training else image.clamp(-1, 1)


class R3GANDiscriminator(nn.Module):
    """R×R×3 image (+ labels when conditional) → one logit per image; G's stages mirrored."""

    def __init__(
        self,
        resolution: int = 64,  # input side R, a power of two in [8, 1024]
        conditioning: list[str] | None = None,  # attributes for the projection term
        class_heads: bool = False,  # AC-GAN class heads on the projection's features (conditional models only)
        channel_base: int = 24576,  # channels at resolution r: min(channel_base // r, channel_max)
        channel_max: int = 768,
        blocks_per_stage: int = 2,
        expansion: int = 2,
        group_width: int = 16,
    ) -> None:
        super().__init__()
        if blocks_per_stage < 1 or expansion < 1 or group_width < 1:
            raise ValueError("r3gan: blocks_per_stage, expansion and group_width must be >= 1")
        resolutions = _stage_resolutions(resolution)[::-1]
        channels = _channels(resolutions, channel_base, channel_max, expansion, group_width)
        self.resolution = resolution
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        total_blocks = blocks_per_stage * len(resolutions)
        self.from_rgb = _conv(3, channels[resolution], 1)  # the paper's extraction layer
        self.stages = nn.ModuleList()
        for res, following in zip(resolutions, resolutions[1:] + [None]):
            blocks = [
                ResidualBlock(channels[res], expansion, group_width, total_blocks) for _ in range(blocks_per_stage)
            ]
            transition = (
                DiscriminativeBasis(channels[res], channels[res])
                if following is None
                else Resample(channels[res], channels[following], up=False)
            )
            self.stages.append(nn.Sequential(*blocks, transition))
        self.stage_shapes = [(channels[res // 2], res // 2, res // 2) for res in resolutions[:-1]] + [(channels[4],)]
        self.classifier = _msr_init(nn.Linear(channels[4], 1))
        nn.init.zeros_(self.classifier.bias)
        self.projection = ProjectionHead(self.label_dims, channels[4]) if self.conditional else None
        self.class_heads = ClassHeads(self.label_dims, channels[4]) if class_heads else None

    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_classes: bool = False,  # also return the class heads' logits per attribute
    ) -> DiscriminatorOutput:
        expected = (3, self.resolution, self.resolution)
        assert images.ndim == 4 and images.shape[1:] == expected, (
            f"expected B×{expected} images, got {tuple(images.shape)}"
        )
        check_labels(labels, self.label_dims, len(images))
        x = self.from_rgb(images)
        for stage, shape in zip(self.stages, self.stage_shapes):
            x = stage(x)
            assert x.shape[1:] == shape, f"stage output {tuple(x.shape[1:])}, expected {shape}"
        logits = self.classifier(x).squeeze(1)
        return discriminator_output(logits, x, labels, self.projection, self.class_heads, return_classes)
