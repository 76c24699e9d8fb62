"""quality_filter: decode every image; quarantine broken, too small, grayscale (by config), blurry, faceless and
duplicate ones (exact and near), each with a reason; generated feedback faces have their own size and blur limits."""

from typing import Annotated, Any, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.quality import QualityConfig, assess_quality, origin_summary, quarantine_summary
from steps.materializers import ManifestMaterializer


@step(output_materializers=ManifestMaterializer)
def quality_filter(
    manifest: pd.DataFrame,
    min_side: int = 64,
    blur_threshold: float = 7.0,
    grayscale: str = "keep",
    max_pixels: int = 40_000_000,
    near_duplicate_distance: Optional[int] = 6,
    near_duplicate_min_correlation: float = 0.96,
    face_check: Optional[dict[str, Any]] = None,
    feedback: Optional[dict[str, Any]] = None,
    workers: int = 2,
) -> Annotated[pd.DataFrame, "screened_manifest"]:
    """Every ingested row comes out, marked kept or quarantined: nothing is silently dropped.

    ``face_check``: ``{enabled: true, cascade: …, min_face_score: 3, …}`` (see facegen.data.faces.FaceCheck);
    null or ``enabled: false`` skips it. ``feedback``: ``{min_side, blur_threshold}`` for generated faces
    (origin ``feedback``), calibrated at the generator's resolution; null: the 32 px defaults of
    facegen.data.quality.FeedbackThresholds.
    """
    config = QualityConfig.from_dict({
        "min_side": min_side, "blur_threshold": blur_threshold, "grayscale": grayscale, "max_pixels": max_pixels,
        "near_duplicate_distance": near_duplicate_distance,
        "near_duplicate_min_correlation": near_duplicate_min_correlation, "face_check": face_check,
        "feedback": feedback,
    })  # fmt: skip
    screened = assess_quality(manifest, config=config, workers=workers)
    kept = int((screened["status"] == "kept").sum())
    if kept == 0:
        raise ValueError(
            f"no usable image in source {', '.join(sorted(manifest['source'].unique()))}: "
            f"all {len(screened)} quarantined ({quarantine_summary(screened)})"
        )
    reasons = quarantine_summary(screened)
    counts = {"ingested": len(screened), "kept": kept, "quarantined": len(screened) - kept,
              "grayscale_flagged": int(screened["grayscale"].eq(True).sum()), **origin_summary(screened)}  # fmt: skip
    mlflow.log_metrics({f"data_{name}": value for name, value in counts.items()})
    mlflow.log_metrics({f"quarantined_{reason}": count for reason, count in reasons.items()})
    quarantined = screened[screened["status"] == "quarantined"][["uri", "origin", "reason", "detail"]]
    mlflow.log_text(quarantined.to_csv(index=False), "data/quarantine.csv")
    log_metadata(metadata={**counts, "quarantine_reasons": reasons})
    return screened
