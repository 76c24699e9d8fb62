"""real_features: Inception features of the training faces, computed once per dataset (manifest hash, resolution).

The artifact is cached by ZenML: while the shard set is unchanged (its content hash: same faces, rows and resolution),
later runs reuse it and evaluating a new generator extracts features of generated faces only.
"""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
from zenml import log_metadata, step

from facegen.data.shards import ShardSet
from facegen.metrics.features import REAL_FEATURES_FILE, REAL_IMAGES_FILE, RealFeatures
from facegen.metrics.inception_weights import ensure_inception_weights


@step(enable_artifact_visualization=False)
def real_features(
    training_set: ShardSet, max_real: Optional[int] = None, seed: int = 0
) -> Annotated[Path, "real_features"]:
    """Each distinct training face once (oversampled repeats removed), at most ``max_real`` of them (seeded), chosen
    before any is read: only those faces are fetched from the store (byte ranges of their shards)."""
    rows = training_set.unique_rows()
    if max_real is not None and len(rows) > max_real:
        rows = rows[np.sort(np.random.default_rng(seed).choice(len(rows), size=max_real, replace=False))]
    images = training_set.read_rows(rows, progress=True)
    record = RealFeatures.from_images(images, weights_path=ensure_inception_weights(), progress=True)
    out = Path(tempfile.mkdtemp(prefix="facegen-real-features-"))
    record.save(out / REAL_FEATURES_FILE)
    np.save(out / REAL_IMAGES_FILE, images)
    log_metadata(metadata={**record.identity, "training_images": len(training_set)})
    return out
