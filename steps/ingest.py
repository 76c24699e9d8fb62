"""ingest: list and fingerprint every image of the source into the manifest (one row per image)."""

from typing import Annotated, Optional

import pandas as pd
from zenml import log_metadata, step

from facegen.data.manifest import build_manifest
from steps.materializers import ManifestMaterializer


@step(enable_cache=False, output_materializers=ManifestMaterializer)
def ingest(
    source: str,
    max_images: Optional[int] = None,
    seed: int = 0,
) -> Annotated[pd.DataFrame, "manifest"]:
    """Always re-lists the source (it may have changed); the manifest's content hash keeps downstream steps cached."""
    manifest = build_manifest(source, max_images=max_images, seed=seed)
    labelled = int(manifest["gender"].notna().sum()) if "gender" in manifest else 0
    log_metadata(metadata={"source": source, "images": len(manifest), "labelled": labelled})
    return manifest
