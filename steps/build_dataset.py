"""build_dataset: centre-crop and resize the planned images to N×N uint8 tensors the trainer moves to the GPU once,
with each face's attribute labels (see facegen.data.label_encoding) and sampling weight."""

from typing import Annotated, Tuple

import numpy as np
import pandas as pd
from zenml import log_metadata, step

from facegen.data.label_encoding import LABEL_COLUMNS, UNSPECIFIED, encode_attribute_labels
from facegen.data.packing import pack_images


@step(enable_artifact_visualization=False)
def build_dataset(
    sampling_plan: pd.DataFrame, resolution: int = 32
) -> Tuple[
    Annotated[np.ndarray, "packed_dataset"], Annotated[np.ndarray, "labels"], Annotated[np.ndarray, "sample_weights"]
]:
    """Packed N×3×R×R uint8, N×3 int64 labels (−1 = unspecified) and one sampling weight per image (all 1 unless
    balance's strategy is ``weights``).

    Augmentation is applied per batch while training, never baked in here.
    """
    images = pack_images(sampling_plan, resolution=resolution)
    labels = encode_attribute_labels(sampling_plan)
    weights = sampling_plan["sample_weight"].to_numpy(dtype=np.float64)
    known = {f"labelled_{name}": int((labels[:, k] != UNSPECIFIED).sum()) for k, name in enumerate(LABEL_COLUMNS)}
    log_metadata(
        metadata={
            "images": int(images.shape[0]),
            "resolution": resolution,
            "bytes": int(images.nbytes),
            "weighted_sampling": bool(not np.allclose(weights, weights[0])),
            **known,
        }
    )
    return images, labels, weights
