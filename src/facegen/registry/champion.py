"""Faces from the currently served model (`champion`), for comparisons against a new candidate."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from facegen.registry.model_registry import champion_version


def champion_generator_images(model_name: str, *, n: int, seed: int) -> np.ndarray | None:
    """``n`` faces (uint8 N×3×H×W) from ``models:/<model_name>@champion``, or None when nothing is approved yet."""
    if champion_version(MlflowClient(), model_name) is None:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    faces = np.asarray(model.predict(pd.DataFrame({"seed": np.arange(seed, seed + n, dtype=np.int64)})))
    assert faces.ndim == 4 and faces.shape[-1] == 3, f"champion returned {faces.shape}, expected N×H×W×3"
    return np.ascontiguousarray(faces.transpose(0, 3, 1, 2))
