"""quality_filter: decode every image; quarantine undecodable, too small, blurry and duplicate ones with a reason."""

from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.quality import assess_quality, quarantine_summary
from steps.materializers import ManifestMaterializer


@step(output_materializers=ManifestMaterializer)
def quality_filter(
    manifest: pd.DataFrame,
    min_side: int = 64,
    blur_threshold: float = 7.0,
) -> Annotated[pd.DataFrame, "screened_manifest"]:
    """Every ingested row comes out, marked kept or quarantined: nothing is silently dropped."""
    screened = assess_quality(manifest, min_side=min_side, blur_threshold=blur_threshold)
    kept = int((screened["status"] == "kept").sum())
    if kept == 0:
        raise ValueError(
            f"no usable image in source {', '.join(sorted(manifest['source'].unique()))}: "
            f"all {len(screened)} quarantined ({quarantine_summary(screened)})"
        )
    reasons = quarantine_summary(screened)
    counts = {"ingested": len(screened), "kept": kept, "quarantined": len(screened) - kept}
    mlflow.log_metrics({f"data_{name}": value for name, value in counts.items()})
    mlflow.log_metrics({f"quarantined_{reason}": count for reason, count in reasons.items()})
    log_metadata(metadata={**counts, "quarantine_reasons": reasons})
    return screened
