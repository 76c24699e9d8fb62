"""The adversarial training loop: k discriminator steps, then one generator step.

Real batches come from the uint8 set held whole on the device, or streamed from its shards (facegen.train.data_feed), are augmented on the device, and D sees
real and generated images through the same DiffAugment policy. With ``aux_classifier_weight`` > 0, D also has AC-GAN
class heads (Odena, Olah & Shlens 2017) that D trains on real faces and G must satisfy (``_Trainer``). Under torchrun
the models are DDP-wrapped and each rank takes its slice of every global batch. The data order is a pure function of
(seed, epoch) and the RNG state is checkpointed, so a resumed run continues exactly; non-finite losses roll back to
the last good state.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from facegen.data.augment import augment_batch, to_unit_range
from facegen.data.shards import ShardSet
from facegen.models.losses import auxiliary_classification_loss, get_loss, gradient_penalty, zero_centred_penalty
from facegen.models.registry import build_discriminator, build_generator
from facegen.models.sampling import eval_mode, seeded_latents, to_uint8
from facegen.train.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from facegen.train.config import TrainingConfig
from facegen.train.data_feed import make_feed
from facegen.train.diffaugment import diff_augment, parse_policy
from facegen.train.distributed import (
    DistributedContext,
    assert_replicas_identical,
    gather_rng_states,
    init_from_environment,
    mean_across_ranks,
    restore_rng_states,
    unwrap,
    wrap,
)
from facegen.train.ema import GeneratorEMA
from facegen.train.monitors import class_accuracy, discriminator_accuracy, gradient_norm, mean_pairwise_distance
from facegen.train.schedule import knobs_at


class TrainingMonitor(Protocol):
    """Where the loop reports (main rank only): MLflow in the pipeline, a list in tests."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, epoch: int, step: int, grid: np.ndarray) -> None: ...


@dataclass
class TrainingResult:
    generator: nn.Module  # the EMA generator, eval mode, on the CPU
    discriminator: nn.Module
    model_config: dict[str, Any]  # kwargs that rebuild the generator (resolution included)
    history: list[dict[str, float]] = field(default_factory=list)
    images_seen: int = 0
    generator_steps: int = 0
    seconds: float = 0.0
    rollbacks: int = 0
    resumed_from_step: int = 0
    replica_digests: list[list[float]] = field(default_factory=list)  # one per DDP rank, all equal


def sample_grid(generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
    """A H×W×3 uint8 grid of the generator's faces for fixed latents."""
    with torch.no_grad():
        images = generator(latents, labels)
    images = torch.from_numpy(to_uint8(images))
    return make_grid(images, nrow=max(1, int(math.sqrt(len(images)))), padding=1).permute(1, 2, 0).numpy()


def epoch_order(n: int, seed: int, epoch: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The data order of one epoch: a pure function of (seed, epoch), so a resumed run sees the same.

    Without weights, a permutation (each image once). With balance's sampler weights, ``n`` draws with replacement
    in proportion to them, so under-represented groups are seen more often without copying images.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is None:
        return torch.randperm(n, generator=generator)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


class _Trainer:
    """Holds the models, optimisers and counters of one run; ``train_gan`` drives it.

    AC-GAN class term (``aux_classifier_weight`` = w > 0; Odena, Olah & Shlens 2017, Eq. 2–3): D adds w·CE(heads(x),
    c) on real faces with their true labels, G adds w·CE(heads(G(z, c)), c) for the labels it was asked for; −1
    labels count for nothing. Unlike the paper, D does not train its heads on generated faces: there, D and G would
    both gain from G making faces easy to classify, which pulls G toward caricatured, low-diversity faces of each
    class (Shu, Bui & Ermon 2017; Gong et al. 2019, TAC-GAN); trained on real faces only, the heads stay a classifier of
    the data's classes, which G must satisfy. The adversarial loss (projection discriminator included) is unchanged.
    """

    def __init__(
        self,
        images: np.ndarray | ShardSet,
        labels: np.ndarray | None,
        config: TrainingConfig,
        context: DistributedContext,
    ) -> None:
        self.config, self.context, self.device = config, context, context.device
        self.loss = get_loss(config.loss)
        self.policy = parse_policy(config.diffaugment)
        torch.manual_seed(config.seed)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed + 7919 * context.rank)
        self.model_config = {**config.model, "resolution": int(images.shape[-1])}
        self.generator = build_generator(config.architecture, self.model_config).to(self.device)
        self.aux_weight = config.aux_classifier_weight
        heads = {"class_heads": True} if self.aux_weight > 0 else {}  # absent at 0: the same D, weights and RNG draws
        self.discriminator = build_discriminator(config.architecture, {**self.model_config, **heads}).to(self.device)
        self.conditional = bool(self.generator.conditional)
        if self.conditional and labels is None:
            raise ValueError("a conditional architecture needs labels for the training images")
        if config.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.ema = GeneratorEMA(self.generator, config.ema_decay)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use bf16 on the CPU")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        self.g_train = wrap(torch.compile(self.generator) if config.compile else self.generator, context)
        self.d_train = wrap(torch.compile(self.discriminator) if config.compile else self.discriminator, context)
        self.feed = make_feed(
            images,
            labels if self.conditional else None,
            self.device,
            config.data_on_device,
            rank=context.rank,
            world_size=context.world_size,
            seed=config.seed,
        )
        # Fixed real faces: the health monitor's diversity yardstick (read once: a streamed set has no random access).
        reference = torch.randint(0, len(images), (config.grid_size,), generator=torch.Generator().manual_seed(0))
        self.real_reference = self.feed.reference(reference)
        self.per_rank_batch = max(1, min(config.batch_size, len(images)) // context.world_size)
        self.steps_per_epoch = max(
            1, len(images) // (self.per_rank_batch * context.world_size * config.d_steps_per_g_step)
        )
        self.total_steps = config.epochs * self.steps_per_epoch
        self.step = 0  # generator steps done
        self.d_steps = 0
        self.images_seen = 0
        self.rollbacks = 0
        self.history: list[dict[str, float]] = []
        self.apply_schedule()
        self.paired_real: tuple[torch.Tensor, torch.Tensor | None] | None = None  # D's last real batch (rpgan)

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "generator_steps": self.step,
            "d_steps": self.d_steps,
            "images_seen": self.images_seen,
            "rollbacks": self.rollbacks,
            "history": self.history,
            "config": self.config.to_dict(),
            "model_config": self.model_config,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": self.ema.shadow.state_dict(),
            "ema_updates": self.ema.updates,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": gather_rng_states(self.rng, self.context),  # every rank's, in rank order
        }

    def load_state(self, state: dict[str, Any], restore_rng: bool = True) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.restore(state["generator_ema"], int(state["ema_updates"]))
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.d_steps = int(state["generator_steps"]), int(state["d_steps"])
        self.images_seen = int(state["images_seen"])
        self.history = [dict(row) for row in state["history"]]
        if restore_rng:
            restore_rng_states(state["rng"], self.rng, self.context)

    def apply_schedule(self) -> None:
        """Set this step's learning rates and Adam β2 from images seen (facegen.train.schedule); keep its γs, p."""
        self.knobs = knobs_at(self.config, self.images_seen)
        for optimiser, lr in ((self.opt_g, self.knobs.lr_g), (self.opt_d, self.knobs.lr_d)):
            for group in optimiser.param_groups:
                group["lr"], group["betas"] = lr, (group["betas"][0], self.knobs.beta2)

    # -- one step ---------------------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.generator.latent_dim, device=self.device, generator=self.rng)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        """Labels for generated images drawn from the data's own label distribution."""
        if not self.conditional:
            return None
        rows = torch.randint(0, len(self.feed), (n,), device=self.device, generator=self.rng)
        return self._drop_labels(self.feed.labels[rows.to(self.feed.labels.device)])

    def _drop_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Hide a share of labels as −1 so the "unspecified" embedding is trained (requests like "female, any age")."""
        if labels is None or self.config.label_dropout <= 0:
            return labels
        hide = torch.rand(labels.shape, device=labels.device, generator=self.rng) < self.config.label_dropout
        return labels.masked_fill(hide, -1)

    def _d_input(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees: DiffAugment, then annealed instance noise, in the configured memory format."""
        if self.policy and self.knobs.diffaugment_p >= 1:
            images = diff_augment(images, self.policy, self.rng)
        elif self.policy and self.knobs.diffaugment_p > 0:  # augment each image with probability p (R3GAN's schedule)
            chosen = torch.rand(len(images), 1, 1, 1, device=self.device, generator=self.rng) < self.knobs.diffaugment_p
            images = torch.where(chosen, diff_augment(images, self.policy, self.rng), images)
        noise_std = self.config.instance_noise * max(0.0, 1.0 - self.step / self.total_steps)
        if noise_std > 0:
            images = images + noise_std * torch.randn(images.shape, device=self.device, generator=self.rng)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _call(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None, **kwargs: Any) -> Any:
        return model(x, **kwargs) if labels is None else model(x, labels, **kwargs)

    def _judge(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """D's realism logits for ``images``, and its class logits when the AC-GAN term is on (else None)."""
        if self.aux_weight <= 0:
            return self._call(model, images, labels).float(), None
        logits, classes = self._call(model, images, labels, return_classes=True)
        return logits.float(), classes

    def discriminator_step(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        raw, true_labels = self.feed.batch(index)
        real_labels = self._drop_labels(true_labels)
        real = augment_batch(to_unit_range(raw), generator=self.rng, **self.config.augment.__dict__)
        fake_labels = self._fake_labels(len(real))
        with torch.no_grad(), self._autocast():
            fake = self._call(self.generator, self._latents(len(real)), fake_labels).float()
        regularise = self.d_steps % self.config.r1_every == 0
        apply_r1, apply_r2 = regularise and self.knobs.r1_gamma > 0, regularise and self.knobs.r2_gamma > 0
        real_in = self._d_input(real).detach().requires_grad_(apply_r1)
        fake_in = self._d_input(fake).detach().requires_grad_(apply_r2)
        with self._autocast():
            real_logits, real_classes = self._judge(self.d_train, real_in, real_labels)
            fake_logits = self._call(self.d_train, fake_in, fake_labels).float()
            loss = self.loss.discriminator(real_logits, fake_logits)
        total = loss
        out = {"loss_d": loss.detach(), "real_logits": real_logits.detach(), "fake_logits": fake_logits.detach()}
        if real_classes is not None:  # the heads learn the true labels, including those hidden from the projection
            aux = auxiliary_classification_loss(real_classes, true_labels)
            total = total + self.aux_weight * aux
            out |= {"aux_loss_d": aux.detach(), "real_classes": {k: v.detach() for k, v in real_classes.items()}}
            out["true_labels"] = true_labels
        if apply_r1:  # lazy R1 (and R2): every r1_every steps, weighted up by r1_every
            total = total + self.knobs.r1_gamma / 2 * zero_centred_penalty(real_logits, real_in) * self.config.r1_every
        if apply_r2:
            total = total + self.knobs.r2_gamma / 2 * zero_centred_penalty(fake_logits, fake_in) * self.config.r1_every
        if self.loss.paired:
            self.paired_real = (real_in.detach(), real_labels)
        if self.loss.needs_gradient_penalty:
            critic = lambda x: self._call(unwrap(self.d_train), x, real_labels).float()  # noqa: E731
            total = total + self.config.gp_weight * gradient_penalty(critic, real, fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        self.d_steps += 1
        return out

    def _paired_real_logits(self) -> torch.Tensor:
        """D's logits, as it is now, for the real images of its last step: what a relativistic G loss compares with."""
        assert self.paired_real is not None, "a paired loss needs a discriminator step before the generator step"
        real, labels = self.paired_real
        with torch.no_grad():
            return self._call(self.discriminator, real, labels).float()

    def generator_step(self) -> dict[str, torch.Tensor]:
        labels = self._fake_labels(self.per_rank_batch)
        self.discriminator.requires_grad_(False)  # G's step must not touch D (and D's DDP must not sync)
        with self._autocast():
            fake = self._call(self.g_train, self._latents(self.per_rank_batch), labels)
            logits, classes = self._judge(self.discriminator, self._d_input(fake.float()), labels)
            loss = (
                self.loss.generator(logits, self._paired_real_logits())
                if self.loss.paired
                else self.loss.generator(logits)
            )
        total, out = loss, {"loss_g": loss.detach()}
        if classes is not None:
            aux = auxiliary_classification_loss(classes, labels)
            total = total + self.aux_weight * aux
            out["aux_loss_g"] = aux.detach()
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.discriminator.requires_grad_(True)
        self.ema.update(self.generator)
        return out


def train_gan(
    images: np.ndarray | ShardSet,
    config: TrainingConfig,
    *,
    labels: np.ndarray | None = None,
    sample_weights: np.ndarray | None = None,
    monitor: TrainingMonitor | None = None,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    fid_fn: Callable[[nn.Module], float] | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train a GAN on uint8 images (N×3×R×R, or a shard set: decoded whole when it fits, else streamed) and return
    the EMA generator with the metric history.

    ``resume``: continue from ``checkpoint_path`` when it exists (counters, curves, RNG and data order included).
    Under torchrun (WORLD_SIZE > 1) this joins the process group and trains with DDP.
    """
    if not isinstance(images, ShardSet) and (
        images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]
    ):
        raise ValueError(f"expected uint8 N×3×R×R images, got {images.dtype} {images.shape}")
    if len(images) < 2:
        raise ValueError(f"need at least 2 training images, got {len(images)}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} label rows for {len(images)} images")
    weights = _sampling_weights(sample_weights, len(images))
    context = init_from_environment(config.resolve_device())
    trainer = _Trainer(images, labels, config, context)
    grid_latents = seeded_latents(config.grid_size, trainer.generator.latent_dim, config.seed + 1, trainer.device)
    # Drawn before a resume restores the RNG: the first attempt's grid, and the restored stream continues exactly.
    grid_labels = trainer._fake_labels(config.grid_size)
    resumed_from = 0
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path, trainer.device)
        check_resumable(saved, config.architecture, trainer.model_config, checkpoint_path)
        trainer.load_state(saved)
        resumed_from = trainer.step
    good_state = copy.deepcopy(trainer.state())

    def checkpoint() -> None:
        nonlocal good_state
        good_state = copy.deepcopy(trainer.state())
        if checkpoint_path is not None and context.is_main:
            save_checkpoint(checkpoint_path, good_state)

    started = time.perf_counter()
    nonfinite: torch.Tensor | None = None  # set on the device when a step's losses were not finite
    bar = tqdm(
        total=trainer.total_steps,
        initial=trainer.step,
        desc="train_gan",
        unit="step",
        disable=not (progress and context.is_main),
    )
    global_batch = trainer.per_rank_batch * context.world_size
    planned: tuple[int, int] | None = None  # (epoch, cursor) the feed was last told to expect
    while trainer.step < trainer.total_steps:
        epoch, position = divmod(trainer.step, trainer.steps_per_epoch)
        trainer.apply_schedule()
        cursor = position * global_batch * config.d_steps_per_g_step
        if planned != (epoch, cursor):  # a new epoch, a resume or a rollback: (re)plan the epoch's draws
            order = trainer.feed.epoch_order(epoch_order(len(images), config.seed, epoch, weights), epoch)
            order = order.to(trainer.device)
            trainer.feed.begin(order, cursor)
        planned = (epoch, cursor + global_batch * config.d_steps_per_g_step)
        for d_index in range(config.d_steps_per_g_step):
            start = cursor + d_index * global_batch
            rank_slice = order[start : start + global_batch][context.rank :: context.world_size]
            d_out = trainer.discriminator_step(rank_slice)
        g_out = trainer.generator_step()
        losses = torch.stack([mean_across_ranks(d_out["loss_d"], context), mean_across_ranks(g_out["loss_g"], context)])
        bad = ~torch.isfinite(losses).all()
        nonfinite = bad if nonfinite is None else nonfinite | bad
        next_step = trainer.step + 1
        epoch_done = next_step % trainer.steps_per_epoch == 0
        log_now = next_step % config.log_every_steps == 0 or next_step == 1
        checkpoint_now = bool(config.checkpoint_every_steps and next_step % config.checkpoint_every_steps == 0)
        checkpoint_now = checkpoint_now or epoch_done
        # Non-finite losses are looked for only where the host reads numbers anyway (logging, checkpoints): a check
        # every step would stall the GPU every step. A bad step since the last look rolls back to the last good state.
        if log_now or checkpoint_now:
            found_nonfinite, nonfinite = bool(nonfinite), None
            if found_nonfinite:
                trainer.rollbacks += 1
                if trainer.rollbacks > config.max_nan_rollbacks:
                    raise FloatingPointError(
                        f"non-finite loss (loss_d, loss_g = {losses.tolist()}) by generator step {next_step}; rolled "
                        f"back {config.max_nan_rollbacks} times already: lower the learning rates or use bf16"
                    )
                rollbacks = trainer.rollbacks
                trainer.load_state(good_state, restore_rng=False)  # new random draws, weights of the last good state
                trainer.rollbacks = rollbacks
                bar.n = trainer.step
                continue
        trainer.step = next_step
        trainer.images_seen += global_batch * config.d_steps_per_g_step
        bar.update(1)
        if log_now and context.is_main:
            real_acc, fake_acc = discriminator_accuracy(d_out["real_logits"], d_out["fake_logits"])
            metrics = {
                "loss_d": losses[0].item(),
                "loss_g": losses[1].item(),
                "d_real_prob": torch.sigmoid(d_out["real_logits"]).mean().item(),
                "d_fake_prob": torch.sigmoid(d_out["fake_logits"]).mean().item(),
                "d_accuracy_real": real_acc,
                "d_accuracy_fake": fake_acc,
                "epoch": float(epoch + 1),
                "images_seen": float(trainer.images_seen),
                "rollbacks": float(trainer.rollbacks),
            }
            if "aux_loss_d" in d_out:  # this rank's batch, like the accuracies above
                metrics["aux_loss_d"], metrics["aux_loss_g"] = d_out["aux_loss_d"].item(), g_out["aux_loss_g"].item()
                accuracy = class_accuracy(d_out["real_classes"], d_out["true_labels"])
                metrics |= {f"aux_accuracy_real_{name}": value for name, value in accuracy.items()}
            if trainer.step % config.monitor_every_steps == 0 or trainer.step == 1:
                metrics |= _health(trainer, grid_latents, grid_labels)
            if fid_fn is not None and config.fid_every_steps and trainer.step % config.fid_every_steps == 0:
                metrics["fid"] = fid_fn(trainer.ema.generator)
            trainer.history.append({"step": float(trainer.step), **metrics})
            if monitor:
                monitor.on_step(trainer.step, metrics)
            bar.set_postfix(epoch=epoch + 1, loss_d=f"{metrics['loss_d']:.3f}", loss_g=f"{metrics['loss_g']:.3f}")
        if checkpoint_now:
            checkpoint()
        if epoch_done and monitor and context.is_main:
            monitor.on_epoch_end(epoch + 1, trainer.step, sample_grid(trainer.ema.generator, grid_latents, grid_labels))
    bar.close()
    digests = assert_replicas_identical(trainer.generator, context) + assert_replicas_identical(
        trainer.discriminator, context
    )
    return TrainingResult(
        generator=trainer.ema.generator.cpu().eval(),
        discriminator=trainer.discriminator.cpu(),
        model_config=trainer.model_config,
        history=trainer.history,
        images_seen=trainer.images_seen,
        generator_steps=trainer.step,
        seconds=time.perf_counter() - started,
        rollbacks=trainer.rollbacks,
        resumed_from_step=resumed_from,
        replica_digests=digests,
    )


def _sampling_weights(sample_weights: np.ndarray | None, n: int) -> torch.Tensor | None:
    """Validated sampler weights, or None when absent or uniform (a plain permutation is then exact)."""
    if sample_weights is None:
        return None
    weights = torch.as_tensor(np.asarray(sample_weights, dtype=np.float64))
    if weights.shape != (n,) or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"sample_weights must be {n} finite non-negative numbers with a positive sum")
    return None if torch.allclose(weights, weights[0]) else weights


def _health(trainer: _Trainer, latents: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    """Gradient norms of the last updates and the generated/real diversity ratio (mode-collapse signal) of the online
    generator (its own BatchNorm statistics): the EMA generator is read only where faces are shown or scored."""
    with torch.no_grad(), eval_mode(trainer.generator):
        fake = trainer._call(trainer.generator, latents, labels)
        real = to_unit_range(trainer.real_reference)
    generated_spread, real_spread = mean_pairwise_distance(fake), mean_pairwise_distance(real)
    return {
        "grad_norm_g": gradient_norm(trainer.generator),
        "grad_norm_d": gradient_norm(trainer.discriminator),
        "diversity_generated": generated_spread,
        "diversity_ratio": generated_spread / max(real_spread, 1e-8),
    }
