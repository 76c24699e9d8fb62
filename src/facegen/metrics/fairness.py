"""Demographics of generated faces: who the generator draws, compared with the distribution we balanced toward.

The ``facegen-attributes`` classifier labels generated faces; per attribute (gender, age_bin, ethnicity) this module
reports the predicted group shares, the total-variation distance to the balancing target
(TV = ½ Σ |share − target|, 0 = on target, 1 = disjoint) and the representation ratio: min / max over groups of
share ÷ target share (groups with a zero target left out), which is the plain min/max group-share ratio when the
target is uniform and stays meaningful when it is not. For conditional generators it also reports how often the
classifier sees the attribute value that was asked for.

The classifier is imperfect (at 32 px it reads age bins right about half the time), so the shares it reports are
corrected for its errors with its confusion matrix on held-out real faces at the generator's resolution
(:mod:`facegen.metrics.fairness_correction`, bootstrap 95 % intervals); the gates read the corrected point estimates
and the raw figures are kept beside them. The same numbers for the real training faces (``reference``) show how
well the correction recovers a distribution whose labels are known.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.gates import FairnessThresholds
from facegen.metrics.fairness_correction import (
    DEFAULT_BOOTSTRAP,
    HeldOut,
    correct_attribute,
    perfect_generator_pass_rate,
)


def group_shares(labels: Sequence[str] | np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Share of each vocabulary group among ``labels`` (zeros included); a label outside ``groups`` is an error."""
    values = np.asarray(labels, dtype=object)
    if len(values) == 0:
        raise ValueError("no labels: shares of an empty set are undefined")
    unknown = sorted(set(values.tolist()) - set(groups))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the vocabulary {list(groups)}")
    return {group: float(np.mean(values == group)) for group in groups}


def _check_distribution(name: str, shares: Mapping[str, float]) -> None:
    total = sum(shares.values())
    if any(value < 0 for value in shares.values()) or not np.isclose(total, 1.0, atol=1e-6):
        raise ValueError(f"{name} must be non-negative shares summing to 1, got {dict(shares)} (sum {total:.6f})")


def total_variation(shares: Mapping[str, float], target: Mapping[str, float]) -> float:
    """½ Σ |shares − target| over the union of groups (a group missing from one side counts as 0 there)."""
    _check_distribution("shares", shares)
    _check_distribution("target", target)
    groups = set(shares) | set(target)
    return 0.5 * float(sum(abs(shares.get(g, 0.0) - target.get(g, 0.0)) for g in groups))


def representation_ratio(shares: Mapping[str, float], target: Mapping[str, float]) -> float:
    """min / max over target groups of share ÷ target share: 1 = every group exactly as represented as intended."""
    relative = [shares.get(group, 0.0) / wanted for group, wanted in target.items() if wanted > 0]
    if not relative:
        raise ValueError(f"the target gives no group a positive share: {dict(target)}")
    return float(min(relative) / max(relative)) if max(relative) > 0 else 0.0


def attribute_summary(
    probabilities: np.ndarray,
    attribute: str,
    target: Mapping[str, float] | None,
    *,
    held_out: HeldOut | None = None,
    strata: np.ndarray | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """One attribute from the classifier's probabilities (faces × groups): shares as classified (argmax,
    ``shares``) and, with a target, TV distance and representation ratio to it. With the classifier's ``held_out``
    readings at this resolution, ``tv`` / ``representation_ratio`` are those of the error-corrected shares
    (``corrected``, with bootstrap intervals) and the as-classified ones are ``*_raw``; without it they are the
    as-classified ones (and ``corrected`` is absent, so the summary says what it is)."""
    groups = ATTRIBUTE_VALUES[attribute]
    probabilities = np.asarray(probabilities)
    if probabilities.dtype.kind not in "fiu" or probabilities.ndim != 2 or probabilities.shape[1] != len(groups):
        raise ValueError(f"{attribute}: expected faces × {len(groups)} probabilities, got {probabilities.shape}")
    shares = group_shares(np.asarray(groups, dtype=object)[probabilities.argmax(1)], groups)
    summary: dict[str, Any] = {"n": len(probabilities), "shares": shares, "target": dict(target) if target else None}
    if not target:
        return summary
    summary["tv_raw"] = total_variation(shares, target)
    summary["representation_ratio_raw"] = representation_ratio(shares, target)
    if held_out is None:
        summary["tv"], summary["representation_ratio"] = summary["tv_raw"], summary["representation_ratio_raw"]
        return summary
    corrected = correct_attribute(
        probabilities, groups, held_out, target, strata=strata, bootstrap=bootstrap, seed=seed
    )
    summary.update(corrected.to_dict())
    return summary


def fairness_report(
    probabilities: Mapping[str, np.ndarray],
    targets: Mapping[str, Mapping[str, float]],
    *,
    reference: Mapping[str, np.ndarray] | None = None,
    requested: Mapping[str, np.ndarray] | None = None,
    held_out: Mapping[str, HeldOut] | None = None,
    gates: FairnessThresholds | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per attribute: the generated faces' summary, the real faces' (``reference``) and conditional accuracy.

    ``probabilities`` / ``reference`` map attribute → the classifier's probabilities per face (faces × groups);
    ``targets`` attribute → group shares (an attribute without a target gets shares only); ``requested`` attribute
    → the group asked of a conditional generator per face (the bootstrap then resamples within requested cells);
    ``held_out`` attribute → the classifier's readings of held-out real faces at the generator's resolution, with
    which shares are corrected (:mod:`facegen.metrics.fairness_correction`) and which give the classifier's own
    accuracy there (``classifier_accuracy``: the ceiling of ``conditional_accuracy``). For each attribute ``gates``
    (default: the default thresholds) limits, ``perfect_pass_rate``: how often a generator that draws exactly what
    it is asked would pass them with this many faces (the gate's power, so a failure can be read against it).
    """
    held_out = held_out or {}
    gates = gates or FairnessThresholds()
    strata = None
    if requested:
        strata = np.unique(
            np.stack([np.asarray(v, dtype=str) for v in requested.values()], 1), axis=0, return_inverse=True
        )[1].ravel()
    report: dict[str, dict[str, Any]] = {}
    for attribute, values in probabilities.items():
        if attribute not in ATTRIBUTE_VALUES:
            raise ValueError(f"unknown attribute {attribute!r}; expected one of {list(ATTRIBUTE_VALUES)}")
        readings = held_out.get(attribute)
        common = {"held_out": readings, "bootstrap": bootstrap, "seed": seed}
        entry = {"generated": attribute_summary(values, attribute, targets.get(attribute), strata=strata, **common)}
        if reference is not None and attribute in reference:
            entry["real"] = attribute_summary(reference[attribute], attribute, targets.get(attribute), **common)
        if readings is not None:
            matrix = readings.confusion
            entry["classifier_accuracy"] = float(np.trace(matrix) / matrix.sum())
            entry["confusion"] = matrix.tolist()
            if attribute in gates.max_tv and targets.get(attribute):
                entry["perfect_pass_rate"] = perfect_generator_pass_rate(
                    readings,
                    ATTRIBUTE_VALUES[attribute],
                    targets[attribute],
                    len(values),
                    max_tv=gates.max_tv[attribute],
                    min_ratio=gates.min_representation_ratio,
                    draws=100,
                    seed=seed,
                )
        if requested is not None and attribute in requested:
            asked = np.asarray(requested[attribute], dtype=object)
            if len(asked) != len(values):
                raise ValueError(f"{attribute}: {len(asked)} requested labels for {len(values)} faces")
            classified = np.asarray(ATTRIBUTE_VALUES[attribute], dtype=object)[np.asarray(values).argmax(1)]
            entry["conditional_accuracy"] = float(np.mean(asked == classified))
        report[attribute] = entry
    return report


def fairness_tags(report: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Flat model-version tags (``fairness.gender.tv`` …) so a version can be judged in the registry UI."""
    tags: dict[str, str] = {}
    for attribute, entry in report.items():
        generated = entry["generated"]
        for key in ("tv", "representation_ratio", "tv_raw", "representation_ratio_raw"):
            if key in generated:
                tags[f"fairness.{attribute}.{key}"] = f"{generated[key]:.4f}"
        for key in ("tv_ci", "representation_ratio_ci"):
            if key in generated:
                tags[f"fairness.{attribute}.{key}"] = f"{generated[key][0]:.4f}–{generated[key][1]:.4f}"
        for key in ("conditional_accuracy", "classifier_accuracy"):
            if key in entry:
                tags[f"fairness.{attribute}.{key}"] = f"{entry[key]:.4f}"
        tags[f"fairness.{attribute}.shares"] = ", ".join(f"{g} {s:.3f}" for g, s in generated["shares"].items())
        if "corrected" in generated:
            tags[f"fairness.{attribute}.corrected_shares"] = ", ".join(
                f"{g} {s:.3f}" for g, s in generated["corrected"].items()
            )
    return tags


def fairness_metrics(report: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The same numbers as MLflow run metrics (``fairness_gender_tv`` …), generated and real side by side."""
    metrics: dict[str, float] = {}
    for attribute, entry in report.items():
        for side in ("generated", "real"):
            suffix = "_real" if side == "real" else ""
            for key in ("tv", "representation_ratio", "tv_raw", "representation_ratio_raw"):
                if key in entry.get(side, {}):
                    metrics[f"fairness_{attribute}_{key}{suffix}"] = entry[side][key]
            for key in ("tv_ci", "representation_ratio_ci"):
                if key in entry.get(side, {}):
                    low, high = entry[side][key]
                    metrics[f"fairness_{attribute}_{key}_low{suffix}"] = low
                    metrics[f"fairness_{attribute}_{key}_high{suffix}"] = high
        for key in ("conditional_accuracy", "classifier_accuracy", "perfect_pass_rate"):
            if key in entry:
                metrics[f"fairness_{attribute}_{key}"] = entry[key]
    return metrics


def stratified_requests(
    label_dims: Mapping[str, int], targets: Mapping[str, Mapping[str, float]], n: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels to ask a conditional generator for, stratified: every joint cell of the conditioned attributes gets
    exactly its target share of the ``n`` requests (target of a cell = product of its attributes' target shares,
    uniform where no target is given; counts rounded by largest remainder), in a seeded random order.

    Random draws would put a perfect generator off target by sampling noise alone (with 1,000 draws the age_bin
    min/max ratio of a perfect model falls below 0.8 most of the time); stratified requests leave only the
    classifier's noise. Returns the n×K index array (``label_dims`` column order) and attribute → requested names.
    """
    attributes = list(label_dims)
    marginals = []
    for attribute in attributes:
        groups = ATTRIBUTE_VALUES[attribute]
        target = targets.get(attribute) or {g: 1.0 / len(groups) for g in groups}
        p = np.array([float(target.get(g, 0.0)) for g in groups], dtype=np.float64)
        if p.sum() <= 0:
            raise ValueError(f"{attribute}: the target gives no group a positive share: {dict(target)}")
        marginals.append(p / p.sum())
    cells = np.array(np.meshgrid(*[np.arange(len(p)) for p in marginals], indexing="ij")).reshape(len(marginals), -1).T
    shares = np.prod([marginals[k][cells[:, k]] for k in range(len(attributes))], axis=0)
    exact = shares * n
    counts = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - counts), kind="stable")
    counts[remainder_order[: n - int(counts.sum())]] += 1
    index = np.repeat(cells, counts, axis=0)
    index = index[np.random.default_rng(seed).permutation(n)]
    names = {
        attribute: np.asarray(ATTRIBUTE_VALUES[attribute], dtype=object)[index[:, k]]
        for k, attribute in enumerate(attributes)
    }
    return index.astype(np.int64), names


def plot_fairness(report: Mapping[str, Mapping[str, Any]], training: Mapping[str, Mapping[str, Any]] | None = None):
    """One panel per attribute: training data after balancing (labels), generated faces as classified (raw) and
    corrected for the classifier's errors with their 95 % intervals, real training faces corrected the same way
    (how well the correction recovers known shares), and the target as a red tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(report), 1, figsize=(11, 3.2 * len(report)), squeeze=False)
    for axis, (attribute, entry) in zip(axes[:, 0], report.items()):
        groups = list(ATTRIBUTE_VALUES[attribute])
        balance = (training or {}).get(attribute, {})
        generated = entry["generated"]
        series: list[tuple[str, list[float], str, Any]] = []
        if balance:
            series.append(
                ("training after balancing (labels)", [balance[g]["after_share"] for g in groups], "#8fb8de", None)
            )
        if "corrected" in entry.get("real", {}):
            series.append(
                ("real training faces, corrected", [entry["real"]["corrected"][g] for g in groups], "#6a9f58", None)
            )
        series.append(("generated, as classified", [generated["shares"][g] for g in groups], "#f2b48a", None))
        if "corrected" in generated:
            values = [generated["corrected"][g] for g in groups]
            errors = np.array(
                [
                    [v - generated["corrected_ci"][g][0], generated["corrected_ci"][g][1] - v]
                    for g, v in zip(groups, values)
                ]
            ).T
            series.append(("generated, corrected (95% CI)", values, "#c4501b", np.clip(errors, 0, None)))
        width = 0.8 / len(series)
        x = np.arange(len(groups))
        for i, (label, values, colour, errors) in enumerate(series):
            axis.bar(
                x - 0.4 + width * (i + 0.5),
                values,
                width=width,
                label=label,
                color=colour,
                yerr=errors,
                capsize=2 if errors is not None else 0,
            )
        target = generated["target"]
        if target:
            axis.scatter(
                x, [target.get(g, 0.0) for g in groups], marker="_", s=500, color="#d62728", label="target", zorder=3
            )
        title = attribute
        if "tv" in generated:
            kind = "corrected" if "corrected" in generated else "raw"
            title = (
                f"{attribute}: {kind} TV {generated['tv']:.3f}, representation ratio "
                f"{generated['representation_ratio']:.2f}"
            )
            if "conditional_accuracy" in entry:
                title += f"; classified as requested {entry['conditional_accuracy']:.2f}"
            if "classifier_accuracy" in entry:
                title += f" (classifier accuracy at this resolution {entry['classifier_accuracy']:.2f})"
        axis.set_title(title, fontsize=10)
        axis.set_xticks(x, groups, fontsize=8)
        axis.set_ylabel("share")
        axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return figure
