"""Registry of GAN architectures chosen by config: name → (generator class, discriminator class).

New architectures join with ``register_architecture`` so configs, checkpoints and the serving loader all resolve
models by the same name. A conditional model is the same architecture with ``conditioning`` in its config (e.g.
``{"conditioning": ["gender", "age_bin", "ethnicity"]}``).

Every generator has ``latent_dim``, ``resolution``, ``conditional`` and ``label_dims`` and is called as
``G(z, labels=None, truncation_psi=1.0)``; every discriminator as ``D(images, labels=None)`` → B logits (and, built
with ``class_heads=True``, ``D(images, labels, return_classes=True)`` → (logits, class logits per attribute)).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from facegen.config_keys import reject_unknown
from facegen.models import dcgan, r3gan, stylegan
from facegen.models.dcgan import BriefDCGANDiscriminator, BriefDCGANGenerator, DCGANDiscriminator, DCGANGenerator
from facegen.models.r3gan import R3GANDiscriminator, R3GANGenerator
from facegen.models.resolution import MIN_RESOLUTION
from facegen.models.resolution import check_resolution as check_side
from facegen.models.stylegan import StyleGANDiscriminator, StyleGANGenerator


@dataclass(frozen=True)
class Architecture:
    """A generator/discriminator pair and the image sides it is built for (powers of two in between)."""

    generator: type[nn.Module]
    discriminator: type[nn.Module]
    max_resolution: int
    min_resolution: int = MIN_RESOLUTION


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str,
    generator: type[nn.Module],
    discriminator: type[nn.Module],
    max_resolution: int,
    min_resolution: int = MIN_RESOLUTION,
) -> None:
    """Make an architecture available to configs under ``name``, at powers of two from min to max_resolution."""
    if name in _ARCHITECTURES:
        raise ValueError(f"architecture {name!r} is already registered")
    _ARCHITECTURES[name] = Architecture(generator, discriminator, max_resolution, min_resolution)


def architectures() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_ARCHITECTURES)


def _get(name: str) -> Architecture:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; registered: {architectures()}") from None


def class_head_architectures() -> list[str]:
    """Names of the architectures whose discriminator takes ``class_heads`` (AC-GAN's auxiliary classifier)."""
    return [name for name in architectures() if "class_heads" in _accepted(_ARCHITECTURES[name].discriminator)]


def check_resolution(name: str, resolution: int) -> int:
    """log2 of ``resolution`` if architecture ``name`` is built at it, else a ValueError saying why: what a config
    is checked with before any image is packed, so a wrong side fails in seconds rather than at train_gan."""
    architecture = _get(name)
    return check_side(resolution, name, architecture.max_resolution, architecture.min_resolution)


def _accepted(cls: type[nn.Module]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _kwargs_for(name: str, cls: type[nn.Module], config: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``config`` that ``cls.__init__`` accepts, so G and D can share one model config; a key that
    neither the generator nor the discriminator of ``name`` accepts (a typo in YAML) is a ValueError naming it."""
    architecture = _get(name)
    reject_unknown(config, _accepted(architecture.generator) | _accepted(architecture.discriminator), f"{name} model")
    accepted = _accepted(cls)
    return {key: value for key, value in config.items() if key in accepted}


def build_generator(name: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate the generator of architecture ``name`` from a model config (resolution, latent_dim, width, …)."""
    return _get(name).generator(**_kwargs_for(name, _get(name).generator, config))


def build_discriminator(name: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate the discriminator of architecture ``name`` from the same model config."""
    return _get(name).discriminator(**_kwargs_for(name, _get(name).discriminator, config))


register_architecture("dcgan", DCGANGenerator, DCGANDiscriminator, dcgan.MAX_RESOLUTION)
register_architecture(  # the brief's pair, exactly
    "dcgan_brief",
    BriefDCGANGenerator,
    BriefDCGANDiscriminator,
    max(dcgan.BRIEF_RESOLUTIONS),
    min(dcgan.BRIEF_RESOLUTIONS),
)
register_architecture("stylegan", StyleGANGenerator, StyleGANDiscriminator, stylegan.MAX_RESOLUTION)
register_architecture("r3gan", R3GANGenerator, R3GANDiscriminator, r3gan.MAX_RESOLUTION)
