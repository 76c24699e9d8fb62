"""Balancing plan: which kept images to train on, and how often, so that joint attribute cells (e.g. ethnicity ×
gender) and further attributes (e.g. age bins) move to their target distributions.

The plan has **one row per draw**: an image drawn k times appears in k rows with ``draw_index`` 0..k-1, so
``len(plan)`` is the training-set size and packing can decode each distinct ``uri`` once. ``oversample_cap``
bounds the *total* draws of any one image (``floor(cap)``, the original draw included), which keeps
oversampling from teaching the generator to memorise a small group.

Labels come from ``attr_<attribute>`` (file-name label, else a confident prediction) when the manifest is tagged,
else the raw label column; rows lacking any balanced attribute are left out and counted as ``unlabelled``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from facegen.attributes import ATTRIBUTE_VALUES

STRATEGIES: tuple[str, ...] = ("downsample", "oversample", "weights")


def _label_series(kept: pd.DataFrame, attribute: str) -> pd.Series:
    """Resolved attribute (``attr_<a>``: label, else confident prediction) when tagged, else the raw label column."""
    for column in (f"attr_{attribute}", attribute):
        if column in kept:
            return kept[column].astype(object).where(kept[column].notna(), None)
    return pd.Series(None, index=kept.index, dtype=object)


def _target_shares(values: tuple[str, ...], target: dict[str, float] | str | None) -> dict[str, float]:
    if target in (None, "uniform"):
        return {value: 1.0 / len(values) for value in values}
    if not isinstance(target, dict):
        raise ValueError(f"a target is 'uniform' or a mapping of group to share, got {target!r}")
    unknown = set(target) - set(values)
    if unknown:
        raise ValueError(f"target names groups outside the vocabulary: {sorted(unknown)}")
    if any(float(v) < 0 for v in target.values()) or sum(float(v) for v in target.values()) <= 0:
        raise ValueError(f"target shares must be non-negative and not all zero: {target}")
    total = sum(float(v) for v in target.values())
    return {value: float(target.get(value, 0.0)) / total for value in values}


def plan_joint_balance(
    kept: pd.DataFrame,
    *,
    cells: tuple[str, ...] | list[str] = ("ethnicity", "gender"),
    also: tuple[str, ...] | list[str] = ("age_bin",),
    targets: dict[str, Any] | None = None,
    strategy: str = "oversample",
    oversample_cap: float = 3.0,
    max_weight_ratio: float = 3.0,
    target_size: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Plan draws from ``kept`` so that joint ``cells`` (e.g. ethnicity × gender) and the ``also`` attributes
    (e.g. age bins) move to their target distributions (uniform unless ``targets[attr]`` gives shares).

    Per-image weights: within each cell, target share / the cell's share of the face's ``also`` group, capped at
    ``max_weight_ratio`` times the cell's smallest weight (over-represented groups are down-weighted exactly, rare
    ones up-weighted within the cap, so no rare face is repeated without bound); then each cell is scaled to its
    target. The cells' shares come out exactly on target; the ``also`` attributes as close as the cap allows (the
    report gives the after shares). Groups with a zero target get weight 0.

    Strategies: ``downsample`` draws each image at most once (the rarest weighted image sets the size);
    ``oversample`` draws up to ``floor(oversample_cap)`` times per image (the size is the largest the cap allows,
    or ``target_size``); ``weights`` keeps every image once with a ``sample_weight`` column (mean 1) for a
    weighted sampler. The plan has one row per draw (``draw_index``).
    Rows lacking any balanced attribute are left out and counted as ``unlabelled``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if oversample_cap < 1 or max_weight_ratio < 1:
        raise ValueError("oversample_cap and max_weight_ratio must be >= 1")
    attributes = [*cells, *also]
    for attribute in attributes:
        if attribute not in ATTRIBUTE_VALUES:
            raise ValueError(f"unknown attribute {attribute!r}; expected one of {sorted(ATTRIBUTE_VALUES)}")
    if kept.empty:
        raise ValueError("no kept images to balance")
    targets = dict(targets or {})
    labels = pd.DataFrame({a: _label_series(kept, a).to_numpy() for a in attributes})
    for attribute in attributes:
        unknown = set(labels[attribute].dropna()) - set(ATTRIBUTE_VALUES[attribute])
        if unknown:
            raise ValueError(f"{attribute} values outside the vocabulary: {sorted(unknown)}")
    usable = labels.notna().all(axis=1).to_numpy()
    rows = np.flatnonzero(usable)
    report: dict[str, Any] = {
        "cells": list(cells),
        "also": list(also),
        "strategy": strategy,
        "unlabelled": int((~usable).sum()),
        "images_before": int(usable.sum()),
    }
    if not len(rows):
        plan = kept.reset_index(drop=True).assign(draw_index=0, sample_weight=1.0)
        report.update(
            balanced=False,
            note="no labelled or confidently predicted rows: all kept rows pass through",
            images_after=len(plan),
            images_dropped=0,
            images_repeated=0,
            max_repeat=1,
            shares={},
        )
        return plan, report

    sub = labels.iloc[rows].reset_index(drop=True)
    cell_key = sub[list(cells)].astype(str).agg(" × ".join, axis=1) if cells else pd.Series("all", index=sub.index)
    cell_values = [" × ".join(c) for c in _product([ATTRIBUTE_VALUES[a] for a in cells])] if cells else ["all"]
    cell_target_full = _cell_targets(cells, targets)
    present_cells = sorted(set(cell_key), key=cell_values.index)
    missing_cells = [c for c in cell_values if c not in present_cells and cell_target_full.get(c, 0) > 0]
    cell_target = {c: cell_target_full[c] for c in present_cells}
    total = sum(cell_target.values())
    if total <= 0:
        raise ValueError("the target gives no weight to any cell present in the data")
    cell_target = {c: v / total for c, v in cell_target.items()}

    # Within each cell, faces are weighted toward the `also` target: weight = target share / the cell's own share of
    # the face's `also` group, capped at max_weight_ratio times the cell's smallest weight. The cap keeps the
    # down-weighting of over-represented groups (e.g. ages 20-39) exact and bounds the up-weighting of rare ones,
    # so no single rare face is repeated without bound. Then every cell is scaled to its exact target share.
    n = len(sub)
    weights = np.ones(n)
    cell_index = {c: np.flatnonzero(cell_key.to_numpy() == c) for c in present_cells}
    also_targets = {a: _target_shares(ATTRIBUTE_VALUES[a], targets.get(a)) for a in also}
    if also:
        also_key = sub[list(also)].astype(str).agg(" × ".join, axis=1).to_numpy()
        also_target = {
            " × ".join(combo): float(np.prod([also_targets[a][v] for a, v in zip(also, combo)]))
            for combo in _product([ATTRIBUTE_VALUES[a] for a in also])
        }
        for members in cell_index.values():
            keys = also_key[members]
            groups, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            wanted = np.array([also_target[g] for g in groups])
            if wanted.sum() <= 0:
                continue
            factors = (wanted / wanted.sum()) / (counts / counts.sum())
            positive = factors[factors > 0]
            if len(positive):
                factors = np.minimum(factors, positive.min() * max_weight_ratio)
            weights[members] = factors[inverse]
    total_weight = weights.sum()
    cell_weights = {c: weights[members].sum() for c, members in cell_index.items()}
    for c, members in cell_index.items():
        if cell_weights[c] > 0:
            weights[members] *= cell_target[c] * total_weight / cell_weights[c]
    probabilities = weights / weights.sum()

    rng = np.random.default_rng(seed)
    if strategy == "weights":
        draws = np.ones(n, dtype=np.int64)
        size = n
    else:
        per_image_cap = 1 if strategy == "downsample" else math.floor(oversample_cap)
        size = int(math.floor(per_image_cap / probabilities.max() + 1e-9))
        if target_size is not None:
            size = min(size, int(target_size))
        draws = _allocate(probabilities * size, cell_index, per_image_cap, rng)

    positions = rows[np.repeat(np.arange(n), draws)]
    plan = kept.iloc[positions].reset_index(drop=True)
    plan["draw_index"] = np.arange(len(positions)) - np.repeat(np.cumsum(draws) - draws, draws)
    plan["sample_weight"] = np.repeat(probabilities * n if strategy == "weights" else np.ones(n), draws)

    after_weight = draws.astype(float) * (probabilities * n if strategy == "weights" else 1.0)
    shares = {}
    for attribute in attributes:
        values = ATTRIBUTE_VALUES[attribute]
        before = sub[attribute].value_counts()
        after = pd.Series(after_weight).groupby(sub[attribute].to_numpy()).sum()
        target = _target_shares(values, targets.get(attribute))
        shares[attribute] = {
            v: {
                "before": int(before.get(v, 0)),
                "before_share": float(before.get(v, 0) / n),
                "after": float(after.get(v, 0.0)),
                "after_share": float(after.get(v, 0.0) / max(after_weight.sum(), 1e-12)),
                "target_share": target[v],
            }
            for v in values
        }
    cell_after = pd.Series(after_weight).groupby(cell_key.to_numpy()).sum()
    shares["cells"] = {
        c: {
            "before": int((cell_key == c).sum()),
            "before_share": float((cell_key == c).mean()),
            "after": float(cell_after.get(c, 0.0)),
            "after_share": float(cell_after.get(c, 0.0) / max(after_weight.sum(), 1e-12)),
            "target_share": cell_target_full.get(c, 0.0),
        }
        for c in cell_values
    }
    cell_error = max(abs(v["after_share"] - cell_target.get(c, 0.0)) for c, v in shares["cells"].items())
    repeats = np.bincount(draws)
    notes = []
    if missing_cells:
        notes.append(f"no images for cells {missing_cells}: their target share went to the others")
    report.update(
        balanced=not missing_cells and cell_error < 0.01,
        images_after=int(draws.sum()) if strategy != "weights" else n,
        images_dropped=int((draws == 0).sum()),
        images_repeated=int((draws > 1).sum()),
        max_repeat=int(draws.max()),
        repeat_histogram={int(k): int(v) for k, v in enumerate(repeats) if v},
        max_cell_share_error=float(cell_error),
        weight_spread=float(probabilities.max() / probabilities.min()),
        shares=shares,
        note="; ".join(notes) or None,
    )
    return plan, report


def _product(lists: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    import itertools

    return list(itertools.product(*lists))


def _cell_targets(cells: tuple[str, ...] | list[str], targets: dict[str, Any]) -> dict[str, float]:
    """Cell target shares: the product of each cell attribute's target (uniform by default)."""
    if not cells:
        return {"all": 1.0}
    marginals = [_target_shares(ATTRIBUTE_VALUES[a], targets.get(a)) for a in cells]
    out = {}
    for combo in _product([ATTRIBUTE_VALUES[a] for a in cells]):
        out[" × ".join(combo)] = float(np.prod([m[v] for m, v in zip(marginals, combo)]))
    return out


def _allocate(expected: np.ndarray, cell_index: dict[str, np.ndarray], cap: int, rng: np.random.Generator):
    """Integer draws per image: floor of the expectation, then the cell's remaining draws given out by a seeded
    weighted choice on the fractional parts, so each cell's total is its rounded expectation; at most ``cap``."""
    expected = np.minimum(expected, cap)
    draws = np.floor(expected + 1e-9).astype(np.int64)
    for members in cell_index.values():
        remaining = int(round(expected[members].sum())) - int(draws[members].sum())
        fractions = expected[members] - draws[members]
        candidates = np.flatnonzero(fractions > 1e-9)
        remaining = min(remaining, len(candidates))
        if remaining > 0:
            p = fractions[candidates] / fractions[candidates].sum()
            chosen = rng.choice(candidates, size=remaining, replace=False, p=p)
            draws[members[chosen]] += 1
    return draws
