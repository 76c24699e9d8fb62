"""quality_filter: decode every image; quarantine broken, too small, grayscale (by config), blurry, faceless and
duplicate ones (exact and near), each with a reason; generated feedback faces have their own size and blur limits."""

from typing import Annotated, Any, Optional, Tuple

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.quality import QualityConfig, assess_quality, origin_summary, quarantine_summary
from steps.materializers import ManifestMaterializer


@step(output_materializers={"screened_manifest": ManifestMaterializer})
def quality_filter(
    manifest: pd.DataFrame,
    quality: Optional[dict[str, Any]] = None,
    workers: int = 2,
) -> Tuple[Annotated[pd.DataFrame, "screened_manifest"], Annotated[dict, "quality_settings"]]:
    """Every ingested row comes out, marked kept or quarantined: nothing is silently dropped.

    ``quality``: the thresholds (facegen.data.quality.QualityConfig: its defaults fill what is not given, an unknown
    key is an error), e.g. ``face_check: {enabled: true, min_face_score: 3, …}`` (facegen.data.faces.FaceCheck;
    null or ``enabled: false`` skips it) and ``feedback: {min_side, blur_threshold}`` for generated faces (origin
    ``feedback``), calibrated at the generator's resolution. ``quality_settings`` is the full config used, which
    validate_data holds the kept rows to.
    """
    config = QualityConfig.from_dict(quality)
    screened = assess_quality(manifest, config=config, workers=workers)
    kept = int((screened["status"] == "kept").sum())
    if kept == 0:
        raise ValueError(
            f"no usable image in source {', '.join(sorted(manifest['source'].unique()))}: "
            f"all {len(screened)} quarantined ({quarantine_summary(screened)})"
        )
    reasons = quarantine_summary(screened)
    counts = {
        "ingested": len(screened),
        "kept": kept,
        "quarantined": len(screened) - kept,
        "grayscale_flagged": int(screened["grayscale"].eq(True).sum()),
        **origin_summary(screened),
    }
    mlflow.log_metrics({f"data_{name}": value for name, value in counts.items()})
    mlflow.log_metrics({f"quarantined_{reason}": count for reason, count in reasons.items()})
    quarantined = screened[screened["status"] == "quarantined"][["uri", "origin", "reason", "detail"]]
    mlflow.log_text(quarantined.to_csv(index=False), "data/quarantine.csv")
    log_metadata(metadata={**counts, "quarantine_reasons": reasons})
    return screened, config.to_dict()
