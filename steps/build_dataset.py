"""build_dataset: centre-crop and resize the planned images into a shard set (facegen.data.shards) written straight
into this step's output in the artifact store (local or S3), each row with its attribute labels (see
facegen.data.label_encoding) and sampling weight."""

from typing import Annotated

import numpy as np
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client

from facegen.data.label_encoding import LABEL_COLUMNS, UNSPECIFIED
from facegen.data.shards import ShardSet, write_shards
from steps.artifact_store import storage_options
from steps.materializers import ShardSetMaterializer


@step(enable_artifact_visualization=False, output_materializers={"training_set": ShardSetMaterializer})
def build_dataset(
    sampling_plan: pd.DataFrame, images_per_shard: int, image_format: str, workers: int, resolution: int = 32
) -> Annotated[ShardSet, "training_set"]:
    """Every distinct planned face once (``image_format``: png, or raw npy) in tar shards of ``images_per_shard``, ``workers`` shards packed at a
    time, with the plan's rows: N×3 int64 labels (−1 = unspecified) and one sampling weight per row (all 1 unless
    balance's strategy is ``weights``).

    ZenML creates the output's folder before the step runs and the materializer only checks what is there, so the
    shards are written once, where the artifact lives; a failed run's folder is removed by ZenML. Augmentation is
    applied per batch while training, never baked in here.
    """
    shard_set = write_shards(
        sampling_plan,
        get_step_context().get_output_artifact_uri("training_set"),
        resolution=resolution,
        images_per_shard=images_per_shard,
        image_format=image_format,
        workers=workers,
        storage_options=storage_options(Client().active_stack.artifact_store),
    )
    labels, weights = shard_set.labels, shard_set.sample_weights
    known = {f"labelled_{name}": int((labels[:, k] != UNSPECIFIED).sum()) for k, name in enumerate(LABEL_COLUMNS)}
    log_metadata(
        metadata={
            "images": int(shard_set.index["images"]),
            "rows": len(shard_set),
            "resolution": resolution,
            "shards": len(shard_set.shards),
            "image_format": image_format,
            "bytes_on_store": sum(info.bytes for info in shard_set.shards),
            "bytes_decoded": shard_set.nbytes,
            "weighted_sampling": bool(not np.allclose(weights, weights[0])),
            **known,
        }
    )
    return shard_set
