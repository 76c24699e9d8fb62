"""Fine-tuning: heads on a frozen ImageNet backbone first, then everything at a lower learning rate.

Inputs are packed uint8 faces (N×3×S×S, in memory) and class indices per head (``-1`` where unknown, ignored by the
loss), so one image may teach some heads and not others. Per batch: horizontal flip and a small random shift
(faces are aligned, so heavier augmentation only costs accuracy).

On a CPU the backward pass through MobileNetV2's high-resolution early blocks dominates the cost, and those
generic edge/texture filters gain least from fine-tuning. With ``trainable_from = K`` (> 0) the blocks below K stay
frozen at their ImageNet weights for the whole run: their outputs are computed once for every training face and its
mirror image and kept in memory (float16), and both phases train only blocks K.. and the heads on those cached
maps, several times faster (the small-shift augmentation is then not applied). ``trainable_from = 0`` fine-tunes
every block on raw pixels with flip + shift augmentation.

Resolution augmentation (``degrade_to``, e.g. ``[32]``): the generator's faces reach the classifier at the
generator's resolution N, upsampled to the input size. A classifier trained only on sharp 64 px faces reads such
faces poorly, and a poorly read attribute makes the fairness figures noise. So each training face is shown, per
draw, either sharp or downsampled to one of the ``degrade_to`` sizes and back up (:func:`degrade`), exactly the path
a generated N px face takes; with the cached stem, every variant's maps are cached.

The loss is the sum of the heads' cross-entropies, optionally class-weighted by inverse square-root frequency, which lifts the rare classes' recall (balanced accuracy)
at a small cost in plain accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from facegen.attributes_model.data import MISSING
from facegen.attributes_model.metrics import evaluate_predictions
from facegen.attributes_model.network import HEADS, AttributeNet
from facegen.devices import resolve_device

CLASS_WEIGHTINGS = ("none", "inverse_sqrt")


@dataclass
class AttributeTrainingConfig:
    """Every knob of the attribute model's training (``train_attribute_model.parameters.training`` in configs)."""

    input_size: int = 64
    batch_size: int = 128
    frozen_epochs: int = 1  # heads only, backbone frozen (BatchNorm statistics too)
    epochs: int = 4  # then everything trainable
    lr_head: float = 2e-3
    lr_backbone: float = 5e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    class_weighting: str = "inverse_sqrt"
    shift_pixels: int = 4
    degrade_to: list[int] = field(default_factory=list)  # resolutions faces are also shown at (down, then back up)
    trainable_from: int = 7  # first MobileNetV2 block fine-tuned; lower blocks frozen and cached (0: none)
    max_steps: int | None = None  # cap on optimiser steps over both phases (tests, smoke runs)
    num_threads: int | None = 2
    seed: int = 0
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if self.input_size < 32 or self.batch_size < 1 or self.frozen_epochs < 0 or self.epochs < 0:
            raise ValueError(f"bad attribute training config: {self}")
        if any(not 4 <= size < self.input_size for size in self.degrade_to):
            raise ValueError(f"degrade_to sizes must lie in [4, input_size={self.input_size}), got {self.degrade_to}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AttributeTrainingConfig:
        known = {f.name for f in fields(cls)}
        values = dict(values or {})
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown attribute training settings: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AttributeTrainingResult:
    model: AttributeNet
    history: list[dict[str, Any]]
    report: dict[str, Any]  # held-out evaluation after the last epoch
    steps: int
    seconds: float


def to_unit(batch_uint8: torch.Tensor) -> torch.Tensor:
    return batch_uint8.to(torch.float32) / 255.0


def degrade(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N×3×S×S faces as a ``size`` px image would reach the classifier: antialiased downsampling to ``size``,
    rounding to uint8 (what a generator hands over), then bilinear upsampling back to S (what
    :class:`~facegen.attributes_model.inference.AttributeClassifier` does with small inputs)."""
    full = images.shape[-1]
    small = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    small = small.round().clamp(0, 255)
    up = F.interpolate(small, size=(full, full), mode="bilinear", antialias=True, align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8)


def _augment(batch: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    n = batch.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip.view(-1, 1, 1, 1).to(batch.device), batch.flip(-1), batch)
    if shift > 0:
        size = batch.shape[-1]
        padded = F.pad(batch, (shift,) * 4, mode="replicate")
        dx, dy = (int(v) for v in torch.randint(0, 2 * shift + 1, (2,), generator=generator))
        batch = padded[..., dy : dy + size, dx : dx + size]
    return batch


def _class_weights(labels: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(labels[labels != MISSING], minlength=n_classes).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    weights *= n_classes / weights.sum()
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def predict_probabilities(
    model: AttributeNet, images: np.ndarray | torch.Tensor, *, batch_size: int = 256, device: torch.device | None = None
) -> dict[str, np.ndarray]:
    """Softmax probabilities per head for uint8 N×3×S×S images (already at the model's input size)."""
    device = device or next(model.parameters()).device
    model.eval()
    tensor = torch.as_tensor(images)
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in HEADS}
    for start in range(0, len(tensor), batch_size):
        logits = model(to_unit(tensor[start : start + batch_size].to(device)))
        for name in HEADS:
            outputs[name].append(torch.softmax(logits[name].float(), dim=1).cpu().numpy())
    return {
        name: np.concatenate(parts) if parts else np.zeros((0, len(HEADS[name])), np.float32)
        for name, parts in outputs.items()
    }


def evaluate_model(model: AttributeNet, images: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, Any]:
    probabilities = predict_probabilities(model, images)
    return evaluate_predictions(labels, {name: p.argmax(1) for name, p in probabilities.items()})


class _Top(torch.nn.Module):
    """Backbone blocks from ``trainable_from`` on, pooling and heads: what trains on cached stem outputs."""

    def __init__(self, model: AttributeNet, trainable_from: int) -> None:
        super().__init__()
        self.model = model
        self.blocks = model.backbone[trainable_from:]

    def forward(self, maps: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.model.dropout(self.blocks(maps).mean(dim=(2, 3)))
        return {name: head(pooled) for name, head in self.model.heads.items()}


@torch.no_grad()
def _stem_maps(
    model: AttributeNet, images: torch.Tensor, k: int, flip: bool, size: int | None = None, batch_size: int = 256
) -> torch.Tensor:
    """Outputs of the frozen blocks below ``k`` (float16), for the faces mirrored and/or degraded to ``size``."""
    stem = model.backbone[:k].eval()
    parts = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = to_unit(chunk if size is None else degrade(chunk, size))
        if flip:
            batch = batch.flip(-1)
        parts.append(stem((batch - model.mean) / model.std).to(torch.float16))
    return torch.cat(parts)


def train_attribute_model(
    train_images: np.ndarray,
    train_labels: dict[str, np.ndarray],
    holdout_images: np.ndarray,
    holdout_labels: dict[str, np.ndarray],
    config: AttributeTrainingConfig,
    *,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    pretrained: bool = True,
) -> AttributeTrainingResult:
    """Train from ImageNet weights; evaluate on the held-out split after every epoch. See the module doc."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = resolve_device(config.device)
    if train_images.shape[-1] != config.input_size:
        raise ValueError(f"images are {train_images.shape[-1]}px, config.input_size is {config.input_size}")
    model = AttributeNet(pretrained=pretrained).to(device)
    k = config.trainable_from
    if not 0 <= k < len(model.backbone):
        raise ValueError(f"trainable_from must be in 0..{len(model.backbone) - 1}, got {k}")
    images = torch.from_numpy(np.ascontiguousarray(train_images)).to(device)
    labels = {name: torch.from_numpy(train_labels[name]).to(device) for name in HEADS}
    weights = {
        name: _class_weights(train_labels[name], len(classes), config.class_weighting)
        for name, classes in HEADS.items()
    }
    weights = {name: (w.to(device) if w is not None else None) for name, w in weights.items()}

    sizes: list[int | None] = [None, *config.degrade_to]  # None: the sharp face at the input size
    if k > 0:  # frozen stem: its outputs for every face, its mirror image and their degraded variants, once
        for parameter in model.backbone[:k].parameters():
            parameter.requires_grad_(False)
        variants = [(flip, size) for size in sizes for flip in (False, True)]  # variant v = 2 · size index + flip
        cached = torch.stack([_stem_maps(model, images, k, flip=flip, size=size) for flip, size in variants], 1)
        holdout_maps = _stem_maps(model, torch.from_numpy(np.ascontiguousarray(holdout_images)).to(device), k, False)
        top = _Top(model, k)

        def batch_logits(index: torch.Tensor) -> dict[str, torch.Tensor]:
            variant = torch.randint(0, len(variants), (len(index),), generator=generator).to(device)
            return top(cached[index.to(device), variant].to(torch.float32))

        def evaluate() -> dict[str, Any]:
            model.eval()
            with torch.no_grad():
                logits = {name: [] for name in HEADS}
                for start in range(0, len(holdout_maps), 256):
                    out = top(holdout_maps[start : start + 256].to(torch.float32))
                    for name in HEADS:
                        logits[name].append(out[name].argmax(1).cpu().numpy())
            return evaluate_predictions(holdout_labels, {n: np.concatenate(v) for n, v in logits.items()})

    else:

        def batch_logits(index: torch.Tensor) -> dict[str, torch.Tensor]:
            batch = images[index]
            size = sizes[int(torch.randint(0, len(sizes), (1,), generator=generator))]
            batch = batch if size is None else degrade(batch, size)
            return model(_augment(to_unit(batch), config.shift_pixels, generator))

        def evaluate() -> dict[str, Any]:
            return evaluate_model(model, holdout_images, holdout_labels)

    trainable = [p for p in model.backbone[k:].parameters()]
    n = len(images)
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    total_epochs = config.frozen_epochs + config.epochs
    unfrozen_steps = max(1, steps_per_epoch * config.epochs)
    history: list[dict[str, Any]] = []
    step = 0
    start_time = time.perf_counter()
    report: dict[str, Any] = {}
    for epoch in range(total_epochs):
        frozen = epoch < config.frozen_epochs
        if epoch == 0 or epoch == config.frozen_epochs:
            for parameter in trainable:
                parameter.requires_grad_(not frozen)
            groups = [{"params": list(model.heads.parameters()), "lr": config.lr_head}]
            if not frozen:
                groups.append({"params": trainable, "lr": config.lr_backbone})
            optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
            base_lrs = [group["lr"] for group in optimizer.param_groups]
            phase_step = 0
        model.train()
        model.backbone[:k].eval()  # the cached / frozen stem keeps its ImageNet BatchNorm statistics
        if frozen:
            model.backbone.eval()
        order = torch.randperm(n, generator=generator)
        sums: dict[str, float] = {}
        seen = 0
        for start in range(0, n, config.batch_size):
            if config.max_steps is not None and step >= config.max_steps:
                break
            index = order[start : start + config.batch_size]
            logits = batch_logits(index)
            losses = {}
            for name in HEADS:
                target = labels[name][index.to(device)]
                if bool((target != MISSING).any()):
                    losses[name] = F.cross_entropy(
                        logits[name],
                        target,
                        weight=weights[name],
                        ignore_index=MISSING,
                        label_smoothing=config.label_smoothing,
                    )
            loss = sum(losses.values())
            if not frozen:  # cosine decay over the unfrozen phase
                factor = 0.5 * (1 + math.cos(math.pi * min(phase_step / unfrozen_steps, 1.0)))
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            phase_step += 1
            seen += len(index)
            values = {f"loss_{name}": float(value.detach()) for name, value in losses.items()}
            values["loss"] = float(loss.detach())
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * len(index)
            if on_step is not None:
                on_step(step, values)
        report = evaluate() if len(holdout_images) else {}
        entry = {
            "epoch": epoch + 1,
            "phase": "frozen" if frozen else "unfrozen",
            "steps": step,
            "seconds": round(time.perf_counter() - start_time, 1),
            **{key: value / max(seen, 1) for key, value in sums.items()},
            **{
                f"holdout_{name}_{key}": values[key]
                for name, values in report.items()
                for key in ("accuracy", "balanced_accuracy")
            },
        }
        history.append(entry)
        if on_epoch is not None:
            on_epoch(epoch + 1, entry)
        if config.max_steps is not None and step >= config.max_steps:
            break
    model.eval()
    return AttributeTrainingResult(model, history, report, step, time.perf_counter() - start_time)
