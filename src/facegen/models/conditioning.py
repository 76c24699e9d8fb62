"""What a generator is asked for besides z: attribute labels (layout, validation, the two label-aware layers) and
the truncation strength.

A label tensor is a LongTensor B×K, one column per conditioned attribute in ``facegen.attributes.ATTRIBUTE_VALUES``
order (gender, age_bin, ethnicity; ``label_dims`` of a model lists them), each entry the index of a value in that
attribute's vocabulary or ``UNKNOWN`` (−1) for "unknown / unspecified". −1 lets partially labelled faces train and
lets a request ask for "female, any age".

- :class:`LabelEmbedding` (generator side): one learned vector per value *and* one for "unknown", so an unspecified
  attribute is something the generator learns to marginalise over (when it was trained on such labels).
- :class:`ProjectionHead` (discriminator side): Miyato & Koyama 2018, logit += Σ_attributes <embed(label), φ(x)>;
  "unknown" has a fixed zero embedding, so an unlabelled attribute adds nothing and the discriminator falls back
  to judging realism alone.
- :class:`ClassHeads` (discriminator side, optional): AC-GAN's auxiliary classifier (Odena, Olah & Shlens, ICML 2017,
  §3), one linear head per attribute on the features the projection uses; :func:`discriminator_output` adds both
  label-aware terms, so every discriminator conditions the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from facegen.attributes import ATTRIBUTE_VALUES

#: Label index meaning "unknown / unspecified".
UNKNOWN = -1

#: What a discriminator returns: B logits, or (B logits, attribute → B×classes logits) when asked for its classes.
DiscriminatorOutput = torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]


def label_dims_for(conditioning: list[str] | None) -> dict[str, int]:
    """Vocabulary size per conditioned attribute, in ``ATTRIBUTE_VALUES`` order whatever the order asked for.

    One canonical column order means a label tensor is unambiguous given the set of attributes.
    """
    if not conditioning:
        return {}
    unknown = sorted(set(conditioning) - set(ATTRIBUTE_VALUES))
    if unknown:
        raise ValueError(f"unknown conditioning attributes {unknown}; choose from {list(ATTRIBUTE_VALUES)}")
    if len(set(conditioning)) != len(conditioning):
        raise ValueError(f"conditioning lists an attribute twice: {conditioning}")
    return {name: len(values) for name, values in ATTRIBUTE_VALUES.items() if name in conditioning}


def label_vocabulary(label_dims: Mapping[str, int]) -> dict[str, list[str]]:
    """What a conditional model's label indices mean: attribute → its values in index order (recorded per version)."""
    return {name: list(ATTRIBUTE_VALUES[name]) for name in label_dims}


def encode_labels(label_dims: Mapping[str, int], attributes: Mapping[str, str | None]) -> torch.Tensor:
    """Attribute names → one label row (LongTensor K); attributes left out or None become ``UNKNOWN``.

    ``encode_labels(G.label_dims, {"gender": "female"})`` is "female, any age, any ethnicity".
    """
    extra = sorted(set(attributes) - set(label_dims))
    if extra:
        raise ValueError(f"the model is not conditioned on {extra}; its attributes are {list(label_dims)}")
    row = []
    for name in label_dims:
        value = attributes.get(name)
        if value is None:
            row.append(UNKNOWN)
        elif value in ATTRIBUTE_VALUES[name]:
            row.append(ATTRIBUTE_VALUES[name].index(value))
        else:
            raise ValueError(f"{name}={value!r} is not one of {list(ATTRIBUTE_VALUES[name])}")
    return torch.tensor(row, dtype=torch.long)


def check_labels(labels: torch.Tensor | None, label_dims: Mapping[str, int], batch: int) -> None:
    """Refuse labels for an unconditional model, missing labels for a conditional one, and out-of-range indices."""
    if not label_dims:
        if labels is not None:
            raise ValueError("this model is unconditional: it takes no labels")
        return
    if labels is None:
        raise ValueError(f"this model is conditioned on {list(label_dims)}: pass labels (−1 = unspecified)")
    if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (batch, len(label_dims)):
        expected = (batch, len(label_dims))
        raise ValueError(f"expected integer labels of shape {expected}, got {labels.dtype} {tuple(labels.shape)}")
    # Checked on the CPU only: a device-side check would synchronise every training step with the GPU.
    if labels.device.type == "cpu":
        sizes = torch.tensor(list(label_dims.values()))
        if ((labels < UNKNOWN) | (labels >= sizes)).any():
            raise ValueError(f"label indices must lie in [-1, size) for {dict(label_dims)}, got {labels.tolist()}")


def psi_column(truncation_psi: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """Truncation strength broadcastable over ``like`` (B×D): a float as is, or one psi per sample as a B×1 column.

    Per-sample psi lets a service batch requests that ask for different truncations into one forward pass.
    """
    if not isinstance(truncation_psi, torch.Tensor):
        return float(truncation_psi)
    assert truncation_psi.shape == (like.shape[0],), f"expected {like.shape[0]} psi, got {tuple(truncation_psi.shape)}"
    return truncation_psi.to(device=like.device, dtype=like.dtype)[:, None]


def z_space_input(
    z: torch.Tensor,  # B×latent_dim standard-normal latents
    labels: torch.Tensor | None,  # B×K label indices; required iff ``embed`` is given
    truncation_psi: float | torch.Tensor,  # a float or one per sample
    latent_dim: int,
    label_dims: Mapping[str, int],
    embed: LabelEmbedding | None,
) -> torch.Tensor:
    """The input vector of a generator without a mapping network (DCGAN, R3GAN): ``psi · z`` (truncation toward
    the mean latent 0) with the label embedding appended; checks both."""
    assert z.ndim == 2 and z.shape[1] == latent_dim, f"expected B×{latent_dim} latents, got {tuple(z.shape)}"
    check_labels(labels, label_dims, len(z))
    x = z * psi_column(truncation_psi, z)
    return x if embed is None else torch.cat([x, embed(labels).to(x.dtype)], dim=1)


class LabelEmbedding(nn.Module):
    """Label row → one vector: per attribute a learned table with a learned "unknown" row, summed or concatenated.

    ``reduce="sum"`` is a linear layer over the concatenated one-hot codes (stylegan2-ada's ``embed(c)``);
    ``reduce="concat"`` keeps one slot per attribute (DCGAN's label vector appended to z).
    """

    def __init__(
        self,
        label_dims: Mapping[str, int],  # vocabulary size per attribute (from label_dims_for)
        embed_dim: int,  # size of each attribute's embedding
        reduce: str = "concat",  # concat | sum
    ) -> None:
        super().__init__()
        if reduce not in ("concat", "sum"):
            raise ValueError(f"reduce must be 'concat' or 'sum', got {reduce!r}")
        self.reduce = reduce
        self.embed_dim = embed_dim
        # Row 0 of each table is "unknown"; value i sits at row i + 1. N(0, 1) init, like z.
        self.tables = nn.ModuleDict({name: nn.Embedding(size + 1, embed_dim) for name, size in label_dims.items()})

    @property
    def out_dim(self) -> int:
        return self.embed_dim * (len(self.tables) if self.reduce == "concat" else 1)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        assert labels.ndim == 2 and labels.shape[1] == len(self.tables), f"got labels {tuple(labels.shape)}"
        parts = [table(labels[:, k] + 1) for k, table in enumerate(self.tables.values())]
        return torch.cat(parts, dim=1) if self.reduce == "concat" else torch.stack(parts).sum(0)


class ProjectionHead(nn.Module):
    """Projection-discriminator term Σ_k <embed_k(label_k), features> / √F; "unknown" labels contribute zero."""

    def __init__(
        self,
        label_dims: Mapping[str, int],  # vocabulary size per attribute
        feature_dim: int,  # F, size of the discriminator features φ(x) being projected
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        # Row 0 ("unknown") is the padding row: zero, and never updated.
        self.tables = nn.ModuleDict(
            {name: nn.Embedding(size + 1, feature_dim, padding_idx=0) for name, size in label_dims.items()}
        )
        self.scale = 1 / math.sqrt(feature_dim)  # N(0, 1) rows scaled at runtime: the term starts O(1), like the logit

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        assert features.ndim == 2 and features.shape[1] == self.feature_dim, f"got features {tuple(features.shape)}"
        assert labels.shape == (features.shape[0], len(self.tables)), f"got labels {tuple(labels.shape)}"
        embedded = sum(table(labels[:, k] + 1) for k, table in enumerate(self.tables.values()))
        return (embedded.to(features.dtype) * features).sum(dim=1) * self.scale


class ClassHeads(nn.Module):
    """AC-GAN's auxiliary classifier (Odena, Olah & Shlens 2017, §3): one linear head per attribute on D's features,
    giving class logits P(C | X) for the class term L_C of their Eq. 3. "Unknown" is no class here: the loss ignores
    −1 labels (facegen.models.losses.auxiliary_classification_loss)."""

    def __init__(
        self,
        label_dims: Mapping[str, int],  # vocabulary size per attribute
        feature_dim: int,  # F, size of the discriminator features φ(x) the heads read
    ) -> None:
        super().__init__()
        if not label_dims:
            raise ValueError("class heads need a conditional model: set conditioning")
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, size) for name, size in label_dims.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(features) for name, head in self.heads.items()}


def discriminator_output(
    logits: torch.Tensor,  # B realism logits
    features: torch.Tensor,  # B×F features the label-aware terms read
    labels: torch.Tensor | None,  # B×K label indices; required iff ``projection`` is given
    projection: ProjectionHead | None,
    class_heads: ClassHeads | None,
    return_classes: bool,
) -> DiscriminatorOutput:
    """What a discriminator's forward returns: logits plus the projection term, and with ``return_classes`` also its
    class heads' logits per attribute (one code path through forward(), so a DDP-wrapped D syncs the heads too)."""
    if projection is not None:
        logits = logits + projection(features, labels)
    if not return_classes:
        return logits
    if class_heads is None:
        raise ValueError("this discriminator has no class heads: build it with class_heads=True")
    return logits, class_heads(features)
