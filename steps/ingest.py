"""ingest: list and fingerprint every image of the source into the manifest (one row per image)."""

from typing import Annotated, Optional

import pandas as pd
from zenml import log_metadata, step

from facegen.data.manifest import FEEDBACK_ORIGIN, SOURCE_ORIGIN, build_feedback_manifest, build_manifest
from steps.materializers import ManifestMaterializer


@step(enable_cache=False, output_materializers=ManifestMaterializer)
def ingest(
    source: str,
    max_images: Optional[int] = None,
    feedback_source: Optional[str] = None,
    seed: int = 0,
) -> Annotated[pd.DataFrame, "manifest"]:
    """Always re-lists the source (it may have changed); the manifest's content hash keeps downstream steps cached.

    ``feedback_source`` (off by default): a ``facegen feedback-export`` folder of user-approved generated faces,
    added whole (``max_images`` limits the photos only) as ``origin="feedback"`` rows labelled with the attributes
    they were requested with. The per-origin counts go to MLflow from ``quality_filter`` (``data_ingested_feedback``,
    ``data_kept_feedback``), the step that runs with the experiment tracker; here they are ZenML metadata.
    """
    manifest = build_manifest(source, max_images=max_images, seed=seed)
    origins = [SOURCE_ORIGIN]
    if feedback_source:
        origins.append(FEEDBACK_ORIGIN)
        feedback = build_feedback_manifest(feedback_source)
        if len(feedback):
            manifest = pd.concat([manifest, feedback], ignore_index=True)
    counts = {origin: int(manifest["origin"].eq(origin).sum()) for origin in origins}
    labelled = {origin: int((manifest["origin"].eq(origin) & manifest["gender"].notna()).sum()) for origin in origins}
    log_metadata(
        metadata={
            "source": source,
            "feedback_source": feedback_source or "",
            "images": len(manifest),
            "images_by_origin": counts,
            "labelled": sum(labelled.values()),
            "labelled_by_origin": labelled,
            "quarantined_at_ingest": manifest["reason"].value_counts().to_dict(),
        }
    )
    return manifest
