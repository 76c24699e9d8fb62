"""``samples/by_attribute.png``: what attribute control does, at a glance. One row per ethnicity × gender, one
column per age bin, every face from the same latent (seed), so a row reads as an age sweep and a column as the
same age across groups; only the requested labels change between cells. Rendered to pixels, so it is logged as a
signed PNG like every grid of generated faces (:func:`facegen.provenance.marking.log_marked_grid`)."""

from __future__ import annotations

import itertools

import numpy as np
from torch import nn

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.models.conditioning import encode_labels
from facegen.models.sampling import faces_from_seeds

#: Layout: rows are the joint groups of these attributes, columns the groups of the sweep attribute.
ROW_ATTRIBUTES = ("ethnicity", "gender")
SWEEP_ATTRIBUTE = "age_bin"


def attribute_grid(generator: nn.Module, *, seed: int, device: str = "cpu") -> np.ndarray:
    """The labelled grid as uint8 H×W×3; the generator must be conditioned on all three attributes."""
    missing = sorted(set((*ROW_ATTRIBUTES, SWEEP_ATTRIBUTE)) - set(generator.label_dims))
    if missing:
        raise ValueError(f"the by-attribute grid needs a model conditioned on {missing} too")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(itertools.product(*(ATTRIBUTE_VALUES[a] for a in ROW_ATTRIBUTES)))
    columns = ATTRIBUTE_VALUES[SWEEP_ATTRIBUTE]
    labels = np.stack(
        [
            encode_labels(generator.label_dims, {**dict(zip(ROW_ATTRIBUTES, row)), SWEEP_ATTRIBUTE: age}).numpy()
            for row in rows
            for age in columns
        ]
    )
    faces = faces_from_seeds(generator, [seed] * len(labels), labels=labels, device=device)
    figure, axes = plt.subplots(len(rows), len(columns), figsize=(1.1 * len(columns), 1.15 * len(rows)))
    for (r, c), axis in np.ndenumerate(axes):
        axis.imshow(faces[r * len(columns) + c].transpose(1, 2, 0), interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        if r == 0:
            axis.set_title(columns[c], fontsize=8)
        if c == 0:
            axis.set_ylabel(" ".join(rows[r]), fontsize=7, rotation=0, ha="right", va="center")
    figure.suptitle(f"requested age bin × ethnicity, gender — one latent (seed {seed})", fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return pixels
