"""build_dataset: centre-crop and resize the planned images to N×N uint8 tensors the trainer moves to the GPU once."""

from typing import Annotated

import numpy as np
import pandas as pd
from zenml import log_metadata, step

from facegen.data.packing import pack_images


@step(enable_artifact_visualization=False)
def build_dataset(sampling_plan: pd.DataFrame, resolution: int = 32) -> Annotated[np.ndarray, "packed_dataset"]:
    """Packed N×3×R×R uint8; augmentation is applied per batch while training, never baked in here."""
    images = pack_images(sampling_plan, resolution=resolution)
    log_metadata(metadata={"images": int(images.shape[0]), "resolution": resolution, "bytes": int(images.nbytes)})
    return images
