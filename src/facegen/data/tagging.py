"""Attributes for balancing: file-name labels where present, the classifier's confident predictions elsewhere.

Balancing and validation read the resolved columns ``attr_gender``, ``attr_age_bin``, ``attr_ethnicity`` (and
``attr_<h>_source``: ``label`` / ``predicted`` / null), whichever way they were filled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from facegen.attributes import ATTRIBUTE_VALUES

if TYPE_CHECKING:
    from facegen.attributes_model.inference import AttributeClassifier

TAGGED_ATTRIBUTES: tuple[str, ...] = ("gender", "age_bin", "ethnicity")


def label_only_attributes(manifest: pd.DataFrame) -> pd.DataFrame:
    """``attr_<h>`` = the label (or null) for every row, without any classifier."""
    tagged = manifest.copy()
    for name in TAGGED_ATTRIBUTES:
        label = tagged[name] if name in tagged else pd.Series(None, index=tagged.index, dtype=object)
        tagged[f"attr_{name}"] = label.astype(object).where(label.notna(), None)
        tagged[f"attr_{name}_source"] = np.where(label.notna(), "label", None)
    return tagged


def tag_kept_rows(
    manifest: pd.DataFrame,
    classifier: AttributeClassifier,
    *,
    min_confidence: float = 0.8,
    audit_confidence: float = 0.9,
    min_attribute_confidence: float | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """Predictions for the kept rows (see :func:`facegen.attributes_model.inference.tag_frame`); same rows out.

    Quarantined rows get null predictions and label-only ``attr_*``. With ``min_attribute_confidence``, kept rows
    whose ``attribute_confidence`` is lower become quarantined with reason ``low_confidence``.
    """
    from facegen.attributes_model.inference import tag_frame

    base = label_only_attributes(manifest).reset_index(drop=True)
    kept = np.flatnonzero(base["status"].eq("kept").to_numpy())
    predictions = classifier.predict_files(base["uri"].iloc[kept].tolist(), workers=workers)
    tagged_kept = tag_frame(
        base.iloc[kept], predictions, min_confidence=min_confidence, audit_confidence=audit_confidence
    )
    new_columns = [c for c in tagged_kept.columns if c not in base.columns]
    for column in new_columns:
        base[column] = pd.Series(
            [None] * len(base), dtype=tagged_kept[column].dtype if tagged_kept[column].dtype.kind == "f" else object
        )
    for column in [
        *new_columns,
        *(f"attr_{n}" for n in TAGGED_ATTRIBUTES),
        *(f"attr_{n}_source" for n in TAGGED_ATTRIBUTES),
    ]:
        base.loc[kept, column] = tagged_kept[column].to_numpy()
    if min_attribute_confidence is not None:
        low = base["status"].eq("kept") & (base["attribute_confidence"] < min_attribute_confidence)
        base.loc[low, "status"] = "quarantined"
        base.loc[low, "reason"] = "low_confidence"
        base.loc[low, "detail"] = base.loc[low, "attribute_confidence"].map(
            lambda c: f"attribute confidence {c:.2f} < {min_attribute_confidence}"
        )
    for name in TAGGED_ATTRIBUTES:
        values = base[f"attr_{name}"].dropna()
        unknown = set(values) - set(ATTRIBUTE_VALUES[name])
        if unknown:
            raise AssertionError(f"attr_{name} holds values outside the vocabulary: {sorted(unknown)}")
    return base


def tagging_summary(tagged: pd.DataFrame) -> dict[str, Any]:
    """Counts per attribute among kept rows: from labels, from predictions, still unknown; audited labels."""
    kept = tagged[tagged["status"].eq("kept")]
    summary: dict[str, Any] = {"kept": len(kept)}
    for name in TAGGED_ATTRIBUTES:
        source = kept[f"attr_{name}_source"]
        summary[f"{name}_from_label"] = int(source.eq("label").sum())
        summary[f"{name}_predicted"] = int(source.eq("predicted").sum())
        summary[f"{name}_unknown"] = int(source.isna().sum())
    if "label_audit" in kept:
        summary["label_audit_flags"] = int(kept["label_audit"].notna().sum())
    if "attribute_confidence" in kept:
        summary["attribute_confidence_median"] = float(kept["attribute_confidence"].median())
    if "reason" in tagged:
        summary["quarantined_low_confidence"] = int(tagged["reason"].eq("low_confidence").sum())
    return summary
