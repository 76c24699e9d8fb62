"""StyleGAN2 (config F) generator and residual discriminator in plain PyTorch, after NVlabs stylegan2-ada-pytorch.

Generator: z (+ label embedding) → 8-layer mapping network (lr multiplier 0.01) → W, broadcast to ``num_ws`` styles;
synthesis starts from a learned 4×4 constant and doubles the resolution per block with modulated 3×3 convolutions
(weight demodulation instead of AdaIN's instance norm, which caused StyleGAN1's droplet artefacts), per-layer noise
with learned strengths, and ToRGB skip connections summing every resolution's RGB into the output.
Discriminator: fromRGB, residual downsampling blocks (skip branch scaled by 1/√2 so variance is preserved),
minibatch standard deviation, conv + FC → logit, plus a projection term when conditional.

All weights use the equalised learning rate: parameters are stored N(0, 1) (÷ lr multiplier) and scaled by
He's constant at runtime, so Adam updates every layer at the same relative speed. Resampling uses the [1, 3, 3, 1]
FIR filter through depthwise convolutions, so everything is ordinary PyTorch ops (CPU, CUDA, autocast bf16,
channels_last) with no custom kernels. Modulation is applied to activations ("non-fused", as stylegan2-ada does when
training), so every convolution is a plain dense one that cuDNN runs at full speed; demodulation coefficients are
computed from Σ_k w² in fp32.

Behaviour that depends on ``training``:
- the mapping network updates ``w_avg`` (EMA of W, β = ``w_avg_beta``) in training mode only;
- style mixing (``style_mixing_prob``) happens in training mode only;
- ``noise_mode=None`` means "random" in training mode and "const" in eval mode, so eval outputs depend on the
  latent (and labels) alone: the same seed gives the same face, in any batch;
- eval mode clamps images to [-1, 1]; training mode returns the raw linear ToRGB sum, as StyleGAN2 does, so the
  generator keeps gradients when it strays outside the pixel range (the discriminator sees and penalises that).
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
    psi_column,
)
from facegen.models.resolution import check_resolution

NOISE_MODES = ("random", "const", "none")
ACTIVATIONS = ("linear", "lrelu")
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2)  # keeps activations' second moment through a leaky ReLU (He et al.)
SKIP_GAIN = math.sqrt(0.5)  # residual sum of two unit-variance branches stays unit-variance
MAX_RESOLUTION = 1024  # StyleGAN2's largest (FFHQ, config F: 18 styles); nothing larger is built or tested here


def channel_schedule(resolutions: list[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """Feature maps per resolution: ``min(channel_base // res, channel_max)`` (halving with each doubling)."""
    channels = {res: min(channel_base // res, channel_max) for res in resolutions}
    if min(channels.values()) < 1:
        raise ValueError(f"channel_base={channel_base} leaves no channels at {max(resolutions)}×{max(resolutions)}")
    return channels


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit RMS: the mapping network sees z on the sphere, whatever its sampled norm."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN if activation == "lrelu" else x


def _check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
    return activation


def fir_filter() -> torch.Tensor:
    """The 4×4 binomial low-pass filter [1, 3, 3, 1]ᵀ[1, 3, 3, 1] / 64 used for all up- and downsampling."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


def blur(x: torch.Tensor, kernel: torch.Tensor, *, padding: int, gain: float = 1.0) -> torch.Tensor:
    """Depthwise FIR filtering (``upfirdn2d`` without up/down factors), as a grouped convolution."""
    channels = x.shape[1]
    weight = (kernel * gain).expand(channels, 1, *kernel.shape)
    return F.conv2d(x, weight, padding=padding, groups=channels)


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """×2 FIR upsampling: zero insertion + 4× gain filter, done by one depthwise transposed convolution."""
    channels = x.shape[1]
    weight = (kernel * 4).expand(channels, 1, *kernel.shape)
    upsampled = F.conv_transpose2d(x, weight, stride=2, padding=1, groups=channels)
    assert upsampled.shape[2:] == (2 * x.shape[2], 2 * x.shape[3])
    return upsampled


def modulated_conv2d(
    x: torch.Tensor,  # B×I×H×W activations
    weight: torch.Tensor,  # O×I×k×k shared weights
    styles: torch.Tensor,  # B×I per-sample scales of the input channels
    *,
    demodulate: bool = True,  # rescale each output channel to unit expected variance (StyleGAN2's fix for AdaIN)
    up: bool = False,  # transposed conv with stride 2 followed by the FIR filter: output 2H×2W
    kernel: torch.Tensor | None = None,  # the FIR filter, required when up
) -> torch.Tensor:
    """Convolution with per-sample weights w'ᵢ = sᵢ·wᵢ (÷ ‖s·w‖ per output channel when demodulating).

    Modulating activations instead of weights is equivalent (conv is linear in each input channel) and keeps the
    convolution shared across the batch. Demodulation uses Σᵢ sᵢ² Σₖ w²ₒᵢₖ, which is ‖w'ₒ‖² without materialising
    the B×O×I×k×k modulated weights.
    """
    batch, in_channels = styles.shape
    out_channels, _, kernel_size, _ = weight.shape
    assert x.shape[:2] == (batch, in_channels), f"x {tuple(x.shape)}, styles {tuple(styles.shape)}"
    assert weight.shape[1] == in_channels, f"weight {tuple(weight.shape)}, styles {tuple(styles.shape)}"
    x = x * styles.to(x.dtype)[:, :, None, None]
    if up:
        assert kernel is not None, "upsampling needs the FIR filter"
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # 2H + k − 2 wide
        # Blur padding p with a 4-tap filter: (2H + k − 2) + 2p − 3 = 2H, i.e. p = 1 for the 3×3 convs.
        x = blur(x, kernel, padding=(kernel.shape[-1] + 1 - kernel_size) // 2, gain=4)
    else:
        x = F.conv2d(x, weight, padding=kernel_size // 2)
    if demodulate:
        with torch.autocast(device_type=x.device.type, enabled=False):  # 1/‖w'‖ in fp32, also under bf16 autocast
            energy = styles.float().square() @ weight.float().square().sum(dim=(2, 3)).t()  # B×O
        x = x * (energy + 1e-8).rsqrt().to(x.dtype)[:, :, None, None]
    assert x.shape[1] == out_channels
    return x


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate and an lr multiplier (0.01 in the mapping network)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: str = "linear",  # linear | lrelu
        lr_multiplier: float = 1.0,  # slows this layer's effective learning rate (mapping network: 0.01)
        bias_init: float = 0.0,  # affine layers start at 1 so styles begin as identity scales
    ) -> None:
        super().__init__()
        self.activation = _check_activation(activation)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain), self.activation)


class MappingNetwork(nn.Module):
    """z (+ labels) → W, broadcast to ``num_ws`` style vectors; keeps the running mean ``w_avg`` for truncation."""

    def __init__(
        self,
        z_dim: int,  # input latent size
        w_dim: int,  # intermediate latent size
        num_ws: int,  # style vectors the synthesis network consumes
        label_dims: dict[str, int],  # attribute vocabularies; empty when unconditional
        num_layers: int = 8,  # FC layers
        lr_multiplier: float = 0.01,  # StyleGAN's slower mapping learning rate
        w_avg_beta: float = 0.995,  # decay of the w_avg EMA
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.label_dims = label_dims
        self.w_avg_beta = w_avg_beta
        # stylegan2-ada's c-mapping: a label embedding of size w_dim, normalised, concatenated to normalised z.
        self.embed = LabelEmbedding(label_dims, w_dim, reduce="sum") if label_dims else None
        features = [z_dim + (w_dim if self.embed is not None else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnectedLayer(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
            for a, b in zip(features[:-1], features[1:])
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,  # B×z_dim
        labels: torch.Tensor | None = None,  # B×K, required iff conditional
        truncation_psi: float | torch.Tensor = 1.0,  # w_avg + psi·(w − w_avg); a float or one per sample (B)
        *,
        update_w_avg: bool = True,  # in training mode; off for the extra W of style mixing
    ) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, f"expected B×{self.z_dim} latents, got {tuple(z.shape)}"
        check_labels(labels, self.label_dims, len(z))
        x = normalize_2nd_moment(z.float())
        if self.embed is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed(labels))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if isinstance(truncation_psi, torch.Tensor) or truncation_psi != 1:
            x = self.w_avg.to(x.dtype).lerp(x, psi_column(truncation_psi, x))
        return x[:, None, :].expand(-1, self.num_ws, -1)


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv (optionally ×2 upsampling) → + scaled noise → bias → leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: bool = False) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))  # starts silent; training decides how much noise helps
        self.register_buffer("noise_const", torch.randn(resolution, resolution))  # the fixed noise of "const" mode
        self.register_buffer("kernel", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), up=self.up, kernel=self.kernel)
        assert x.shape[2:] == (self.resolution, self.resolution), f"got {tuple(x.shape)} at {self.resolution}"
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        return _activate(x + self.bias.to(x.dtype)[None, :, None, None], "lrelu")


class ToRGBLayer(nn.Module):
    """Modulated 1×1 conv to RGB without demodulation: its output is the image contribution of one resolution."""

    def __init__(self, in_channels: int, w_dim: int, image_channels: int = 3) -> None:
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(image_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(image_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)  # equalised lr, folded into the styles

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return x + self.bias.to(x.dtype)[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: (const | upsampling conv) → conv → ToRGB, adding its RGB to the upsampled image so far."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.first = in_channels == 0
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGBLayer(out_channels, w_dim)
        self.num_conv = 1 if self.first else 2
        self.register_buffer("kernel", fir_filter(), persistent=False)

    def forward(
        self,
        x: torch.Tensor | None,  # features of the previous block (None for the first)
        image: torch.Tensor | None,  # RGB so far (None for the first)
        ws: torch.Tensor,  # B×(num_conv + 1)×w_dim: one style per conv, the last shared with ToRGB
        noise_mode: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert ws.shape[1] == self.num_conv + 1
        styles = iter(ws.unbind(dim=1))
        if self.first:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, next(styles), noise_mode)
        x = self.conv1(x, next(styles), noise_mode)
        rgb = self.torgb(x, next(styles))
        image = rgb if image is None else upsample2d(image, self.kernel) + rgb
        return x, image


class SynthesisNetwork(nn.Module):
    """``num_ws`` styles → image: blocks at 4, 8, …, resolution."""

    def __init__(self, w_dim: int, resolution: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        log2 = check_resolution(resolution, "stylegan", MAX_RESOLUTION)
        self.w_dim, self.resolution = w_dim, resolution
        resolutions = [2**i for i in range(2, log2 + 1)]
        channels = channel_schedule(resolutions, channel_base, channel_max)
        self.blocks = nn.ModuleList(
            SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res) for res in resolutions
        )
        # Consecutive blocks share a style: block i's ToRGB uses the style of block i+1's first conv (as StyleGAN2).
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str | None = None) -> torch.Tensor:
        expected = (self.num_ws, self.w_dim)
        assert ws.ndim == 3 and ws.shape[1:] == expected, f"expected B×{expected} styles, got {tuple(ws.shape)}"
        noise_mode = noise_mode or ("random" if self.training else "const")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r}; choose one of {NOISE_MODES}")
        x = image = None
        first_style = 0
        for block in self.blocks:
            x, image = block(x, image, ws.narrow(1, first_style, block.num_conv + 1), noise_mode)
            first_style += block.num_conv
        assert image.shape[1:] == (3, self.resolution, self.resolution)
        return image


class StyleGANGenerator(nn.Module):
    """z (+ attribute labels when conditional) → R×R×3 image; see the module docstring for train/eval behaviour."""

    def __init__(
        self,
        resolution: int = 64,  # output side R, a power of two in [8, 1024]
        latent_dim: int = 512,  # z size
        w_dim: int = 512,  # W size (and label-embedding size when conditional)
        conditioning: list[str] | None = None,  # attributes to condition on, e.g. ["gender", "age_bin", "ethnicity"]
        mapping_layers: int = 8,  # depth of the mapping network
        mapping_lr_multiplier: float = 0.01,  # mapping network's learning-rate multiplier
        w_avg_beta: float = 0.995,  # EMA decay of w_avg (the truncation centre)
        style_mixing_prob: float = 0.9,  # probability of mixing two W's per training forward pass (0 = off)
        channel_base: int = 32768,  # channels at resolution r: min(channel_base // r, channel_max)
        channel_max: int = 512,
    ) -> None:
        super().__init__()
        if not 0 <= style_mixing_prob <= 1:
            raise ValueError(f"style_mixing_prob must lie in [0, 1], got {style_mixing_prob}")
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.w_dim = w_dim
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        self.style_mixing_prob = style_mixing_prob
        self.synthesis = SynthesisNetwork(w_dim, resolution, channel_base, channel_max)
        self.mapping = MappingNetwork(
            latent_dim, w_dim, self.synthesis.num_ws, self.label_dims, mapping_layers, mapping_lr_multiplier, w_avg_beta
        )

    @property
    def num_ws(self) -> int:
        """Style vectors per image: 2·log2(R) − 2 (10 at 64×64, 18 at 1024×1024)."""
        return self.synthesis.num_ws

    def forward(
        self,
        z: torch.Tensor,  # B×latent_dim standard-normal latents
        labels: torch.Tensor | None = None,  # B×K label indices (−1 = unspecified); required iff conditional
        truncation_psi: float | torch.Tensor = 1.0,  # W-space truncation: 1 = none, 0 = the average face; or B values
        noise_mode: str | None = None,  # random | const | none; None = random when training, const in eval
    ) -> torch.Tensor:
        ws = self.mapping(z, labels, truncation_psi=truncation_psi)
        if self.training and self.style_mixing_prob > 0:
            ws = self._mix_styles(ws, z, labels, truncation_psi)
        image = self.synthesis(ws, noise_mode=noise_mode)
        return image if self.training else image.clamp(-1, 1)

    def _mix_styles(
        self, ws: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None, psi: float | torch.Tensor
    ) -> torch.Tensor:
        """Style-mixing regularisation: with probability p, layers from a random crossover on use a second W.

        Keeps the generator from assuming adjacent styles are correlated, which localises what each layer controls.
        The coin and the crossover come from torch's CPU generator, so no GPU synchronisation is needed.
        """
        if torch.rand([]).item() >= self.style_mixing_prob:
            return ws
        crossover = int(torch.randint(1, self.num_ws, []))
        other = self.mapping(torch.randn_like(z), labels, truncation_psi=psi, update_w_avg=False)
        return torch.cat([ws[:, :crossover], other[:, crossover:]], dim=1)


class Conv2dLayer(nn.Module):
    """Conv with equalised lr, optional FIR-filtered ×2 downsampling, bias and activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "lrelu",  # linear | lrelu
        down: bool = False,  # blur, then convolve with stride 2: output H/2×W/2
    ) -> None:
        super().__init__()
        self.activation = _check_activation(activation)
        self.down = down
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("kernel", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        kernel_size = weight.shape[-1]
        if self.down:
            # Padding k//2 + 1 makes blur (4 taps) + strided conv land exactly on H/2, aligned like upfirdn2d.
            x = F.conv2d(blur(x, self.kernel, padding=kernel_size // 2 + 1), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=kernel_size // 2)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype)[None, :, None, None]
        x = _activate(x, self.activation)
        return x * gain if gain != 1 else x


class MinibatchStdLayer(nn.Module):
    """Appends one feature map: the mean standard deviation of the features across a group of samples.

    Lets the discriminator see a batch's variety, which penalises mode collapse. Samples are grouped in
    consecutive runs of ``group_size``; a shorter last group is kept (std over fewer samples), except that a lone
    last sample joins the previous group, since a single sample has no spread.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size must be positive, got {group_size}")
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        size = min(self.group_size, n)
        num_groups = math.ceil(n / size)
        group = torch.arange(n, device=x.device) // size
        if n % size == 1 and n > 1:
            group[-1] -= 1
            num_groups -= 1
        flat = x.float().flatten(1)
        counts = torch.zeros(num_groups, device=x.device).index_add_(0, group, torch.ones(n, device=x.device))
        mean = torch.zeros(num_groups, flat.shape[1], device=x.device).index_add_(0, group, flat) / counts[:, None]
        variance = torch.zeros_like(mean).index_add_(0, group, (flat - mean[group]).square()) / counts[:, None]
        std = (variance + 1e-8).sqrt().mean(dim=1)  # one scalar per group
        feature = std[group].to(x.dtype)[:, None, None, None].expand(n, 1, height, width)
        return torch.cat([x, feature], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3×3 convs (the second downsampling) + 1×1 downsampling skip, summed with 1/√2 each."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=True)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, activation="linear", down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x, gain=SKIP_GAIN) + self.conv1(self.conv0(x), gain=SKIP_GAIN)


class StyleGANDiscriminator(nn.Module):
    """R×R×3 image (+ labels when conditional) → one logit per image."""

    def __init__(
        self,
        resolution: int = 64,  # input side R, a power of two in [8, 1024]
        conditioning: list[str] | None = None,  # attributes for the projection term
        class_heads: bool = False,  # AC-GAN class heads on the projection's features (conditional models only)
        channel_base: int = 32768,  # channels at resolution r: min(channel_base // r, channel_max)
        channel_max: int = 512,
        mbstd_group_size: int = 4,  # samples per minibatch-std group
    ) -> None:
        super().__init__()
        log2 = check_resolution(resolution, "stylegan", MAX_RESOLUTION)
        self.resolution = resolution
        self.label_dims = label_dims_for(conditioning)
        self.conditional = bool(self.label_dims)
        resolutions = [2**i for i in range(log2, 1, -1)]
        channels = channel_schedule(resolutions, channel_base, channel_max)
        self.fromrgb = Conv2dLayer(3, channels[resolution], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(channels[res], channels[res // 2]) for res in resolutions[:-1])
        last = channels[4]
        self.mbstd = MinibatchStdLayer(mbstd_group_size)
        self.conv = Conv2dLayer(last + 1, last, 3)
        self.fc = FullyConnectedLayer(last * 4 * 4, last, activation="lrelu")
        self.out = FullyConnectedLayer(last, 1)
        self.projection = ProjectionHead(self.label_dims, last) if self.conditional else None
        self.class_heads = ClassHeads(self.label_dims, last) if class_heads else None

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
        x = self.fromrgb(images)
        for block in self.blocks:
            x = block(x)
        assert x.shape[2:] == (4, 4)
        features = self.fc(self.conv(self.mbstd(x)).flatten(1))
        logits = self.out(features).squeeze(1)
        return discriminator_output(logits, features, labels, self.projection, self.class_heads, return_classes)
