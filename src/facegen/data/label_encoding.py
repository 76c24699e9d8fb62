"""The label encoding the dataset carries to the trainer: one int64 row per image, one column per attribute of
:data:`facegen.attributes.ATTRIBUTE_VALUES` (gender, age_bin, ethnicity, in that order), each the index of the value
in that attribute's vocabulary or −1 when the face has no label for it (the conditional models' "unspecified" slot,
see :mod:`facegen.models.conditioning`). Sharded datasets stream the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from facegen.attributes import ATTRIBUTE_VALUES

#: Column order of the label array (all attributes; a model conditioned on a subset takes those columns).
LABEL_COLUMNS: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)
UNSPECIFIED = -1


def encode_attribute_labels(plan: pd.DataFrame) -> np.ndarray:
    """N×3 int64 label indices of the plan's resolved attributes (``attr_<name>``, file-name label or confident
    prediction; −1 where neither is known). A value outside the vocabulary is an error, never a silent −1."""
    columns = []
    for name in LABEL_COLUMNS:
        values = plan[f"attr_{name}"] if f"attr_{name}" in plan else pd.Series(None, index=plan.index, dtype=object)
        lookup = {value: index for index, value in enumerate(ATTRIBUTE_VALUES[name])}
        unknown = sorted(set(values.dropna()) - set(lookup))
        if unknown:
            raise ValueError(f"attr_{name} holds values outside its vocabulary {list(lookup)}: {unknown[:5]}")
        columns.append(values.map(lambda v: lookup.get(v, UNSPECIFIED) if isinstance(v, str) else UNSPECIFIED))
    return np.stack([c.to_numpy(dtype=np.int64) for c in columns], axis=1) if len(plan) else np.zeros((0, 3), np.int64)


def label_shares(labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Each attribute's share of each value among the faces that carry a label for it (``LABEL_COLUMNS`` rows).

    What a conditional generator trained on these faces is asked for when it is scored against them (the
    ``targets`` of :func:`facegen.metrics.samples.evaluation_faces`): uniform requests would compare another
    demographic mix with the real one. An attribute no face carries is left out (its requests stay uniform).
    """
    if labels.ndim != 2 or labels.shape[1] != len(LABEL_COLUMNS):
        raise ValueError(f"labels must be N×{len(LABEL_COLUMNS)} ({', '.join(LABEL_COLUMNS)}), got {labels.shape}")
    shares = {}
    for column, name in enumerate(LABEL_COLUMNS):
        known = labels[:, column][labels[:, column] != UNSPECIFIED]
        if len(known):
            counts = np.bincount(known, minlength=len(ATTRIBUTE_VALUES[name]))
            shares[name] = {value: float(count) / len(known) for value, count in zip(ATTRIBUTE_VALUES[name], counts)}
    return shares


def labels_for_model(labels: np.ndarray, label_dims: Mapping[str, int]) -> np.ndarray:
    """The columns of a model's conditioned attributes (``label_dims`` order, which is ``LABEL_COLUMNS`` order)."""
    assert labels.ndim == 2 and labels.shape[1] == len(LABEL_COLUMNS), f"got labels {labels.shape}"
    return np.ascontiguousarray(labels[:, [LABEL_COLUMNS.index(name) for name in label_dims]])


def require_labels(labels: np.ndarray, label_dims: Mapping[str, int], *, min_share: float = 0.5) -> None:
    """Refuse to train a conditional model on data that lacks its labels, before any training step runs.

    Each conditioned attribute must be known for at least ``min_share`` of the images (the rest train the
    "unspecified" slot); otherwise the error names the attributes and how to get labels.
    """
    missing = {}
    for name in label_dims:
        known = float(np.mean(labels[:, LABEL_COLUMNS.index(name)] != UNSPECIFIED)) if len(labels) else 0.0
        if known < min_share:
            missing[name] = known
    if missing:
        shares = ", ".join(f"{name} known for {share:.0%}" for name, share in missing.items())
        raise ValueError(
            f"the model is conditioned on {list(label_dims)} but the training faces lack labels ({shares}; at least "
            f"{min_share:.0%} needed). Fix: use a source with labels (UTKFace-style file names or a feedback.csv), "
            "or let tag_attributes label them with facegen-attributes (`make attributes`, then tag_attributes "
            "enabled), or drop those attributes from train_gan.parameters.training.model.conditioning"
        )
