"""real_features: Inception features of the training faces, computed once per dataset (manifest hash, resolution).

The artifact is cached by ZenML: while the packed dataset is unchanged (same manifest content, same resolution),
later runs reuse it and evaluating a new generator extracts features of generated faces only.
"""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
from zenml import log_metadata, step

from facegen.metrics.features import (
    REAL_FEATURES_FILE,
    REAL_IMAGES_FILE,
    RealFeatures,
    unique_images,
)
from facegen.metrics.inception_weights import ensure_inception_weights


@step(enable_artifact_visualization=False)
def real_features(
    packed_dataset: np.ndarray, max_real: Optional[int] = None, seed: int = 0
) -> Annotated[Path, "real_features"]:
    """Each distinct training face once (oversampled repeats removed), at most ``max_real`` of them (seeded)."""
    images = unique_images(packed_dataset)
    if max_real is not None and len(images) > max_real:
        images = images[np.sort(np.random.default_rng(seed).choice(len(images), size=max_real, replace=False))]
    record = RealFeatures.from_images(images, weights_path=ensure_inception_weights(), progress=True)
    out = Path(tempfile.mkdtemp(prefix="facegen-real-features-"))
    record.save(out / REAL_FEATURES_FILE)
    np.save(out / REAL_IMAGES_FILE, images)
    log_metadata(metadata={**record.identity, "training_images": len(packed_dataset)})
    return out
