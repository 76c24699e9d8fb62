"""ingest: list and fingerprint every image of the source into the manifest (one row per image)."""

from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step

from facegen.data.manifest import build_manifest
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
    added as ``origin="feedback"`` rows and counted separately — the brief's retraining with approved faces.
    """
    manifest = build_manifest(source, max_images=max_images, seed=seed)
    if feedback_source:
        feedback = build_manifest(feedback_source, seed=seed, origin="feedback")
        manifest = pd.concat([manifest, feedback], ignore_index=True)
    counts = manifest["origin"].value_counts().to_dict()
    labelled = int(manifest["gender"].notna().sum())
    if mlflow.active_run():
        mlflow.log_metrics({f"data_ingested_{origin}": float(n) for origin, n in counts.items()})
    log_metadata(metadata={"source": source, "feedback_source": feedback_source or "", "images": len(manifest),
                           "images_by_origin": counts, "labelled": labelled})
    return manifest
