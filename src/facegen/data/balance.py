"""Balancing plan: which kept images to train on, and how often, so that one attribute's groups are equal.

The plan has **one row per draw**: an image drawn k times appears in k rows with ``draw_index`` 0..k-1, so
``len(plan)`` is the training-set size and packing can decode each distinct ``uri`` once. ``oversample_cap``
bounds the *total* draws of any one image (``floor(cap)``, the original draw included), which keeps
oversampling from teaching the generator to memorise a small group.

Labels come from ``label_column`` (default: the attribute's own column, filled from file names today). To
balance on a classifier's predictions later, pass e.g. ``label_column="predicted_gender"``; rows whose label
is null are left out of the plan and counted as ``unlabelled``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from facegen.attributes import ATTRIBUTE_VALUES

STRATEGIES: tuple[str, ...] = ("downsample", "oversample")


def _draw_counts(n: int, target: int, max_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Per-image draw counts for a group of ``n`` images summing to ``min(target, n * max_draws)``."""
    total = min(target, n * max_draws)
    counts = np.full(n, total // n, dtype=np.int64)
    counts[rng.choice(n, size=total % n, replace=False)] += 1
    return counts


def plan_balance(
    kept: pd.DataFrame,
    *,
    attribute: str,
    strategy: str = "downsample",
    oversample_cap: float = 3.0,
    seed: int = 0,
    label_column: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Plan draws from ``kept`` (manifest rows with status kept) that equalise the groups of ``attribute``.

    ``downsample`` takes a seeded random subset of every group, of the smallest group's size.
    ``oversample`` draws every group up to the largest group's size, no image more than ``floor(oversample_cap)``
    times; a group too small to get there stays short and the report says ``balanced=False``.
    Without any labels, all kept rows pass through once with ``balanced=False`` and a note.
    Returns ``(plan, report)``; see the module doc for the plan's layout. The report holds ``attribute``,
    ``label_column``, ``strategy``, ``balanced``, ``before`` (labelled images per vocabulary group, zeros
    included), ``after`` (draws per present group), ``unlabelled``, ``images_dropped`` (labelled images never
    drawn), ``images_repeated`` (images drawn more than once), ``max_repeat`` (most draws of one image), ``note``.
    """
    if attribute not in ATTRIBUTE_VALUES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {sorted(ATTRIBUTE_VALUES)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if oversample_cap < 1:
        raise ValueError(f"oversample_cap must be >= 1, got {oversample_cap}")
    if kept.empty:
        raise ValueError("no kept images to balance")
    column = label_column or attribute
    labels = kept[column] if column in kept else pd.Series(None, index=kept.index, dtype=object)
    labelled = labels.notna()
    unknown = sorted(set(labels[labelled]) - set(ATTRIBUTE_VALUES[attribute]))
    if unknown:
        raise ValueError(f"column {column!r} has values outside the {attribute} vocabulary: {unknown}")

    report: dict[str, Any] = {"attribute": attribute, "label_column": column, "strategy": strategy,
                              "unlabelled": int((~labelled).sum())}  # fmt: skip
    if not labelled.any():
        plan = kept.reset_index(drop=True).assign(draw_index=0)
        report.update(balanced=False, before={}, after={}, images_dropped=0, images_repeated=0, max_repeat=1,
                      note=f"no {column!r} labels: all {len(plan)} kept images pass through unbalanced")  # fmt: skip
        return plan, report

    groups = {value: np.flatnonzero((labels == value).to_numpy()) for value in ATTRIBUTE_VALUES[attribute]}
    present = {value: rows for value, rows in groups.items() if len(rows)}
    sizes = [len(rows) for rows in present.values()]
    rng = np.random.default_rng(seed)
    draws = np.zeros(len(kept), dtype=np.int64)
    if strategy == "downsample":
        for rows in present.values():
            draws[rng.choice(rows, size=min(sizes), replace=False)] = 1
    else:
        for rows in present.values():
            draws[rows] = _draw_counts(len(rows), max(sizes), math.floor(oversample_cap), rng)

    positions = np.repeat(np.arange(len(kept)), draws)
    plan = kept.iloc[positions].reset_index(drop=True)
    plan["draw_index"] = np.arange(len(positions)) - np.repeat(np.cumsum(draws) - draws, draws)
    after = {value: int(draws[rows].sum()) for value, rows in present.items()}
    missing = [value for value, rows in groups.items() if not len(rows)]
    balanced = not missing and len(set(after.values())) == 1
    notes = []
    if missing:
        notes.append(f"no kept images for {missing}: those groups cannot be balanced")
    if len(set(after.values())) > 1:
        notes.append(f"oversample cap {oversample_cap} left groups short of {max(sizes)}")
    report.update(
        balanced=balanced,
        before={value: len(rows) for value, rows in groups.items()},
        after=after,
        images_dropped=int(labelled.sum() - (draws > 0).sum()),
        images_repeated=int((draws > 1).sum()),
        max_repeat=int(draws.max()),
        note="; ".join(notes) or None,
    )
    return plan, report
