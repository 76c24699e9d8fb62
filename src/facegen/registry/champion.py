"""Faces from the currently served model (`champion`), for comparisons against a new candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from facegen.models.sampling import base_seeds
from facegen.registry.generator_model import SEED_COLUMN
from facegen.registry.model_registry import champion_version, load_version_pyfunc


def champion_generator_images(
    client: MlflowClient,
    model_name: str,
    *,
    n: int,
    seed: int,
    attributes: Mapping[str, Sequence[str | None]] | None = None,  # attribute → one value per seed (None = any)
) -> np.ndarray | None:
    """The faces of seeds ``seed … seed + n − 1`` (uint8 N×3×H×W) from ``models:/<model_name>@champion`` in
    ``client``'s registry, or None when nothing is approved yet.

    ``attributes`` are the pyfunc's attribute columns (``EvaluationSample.requested`` fits), so the champion can be
    asked for the same stratified requests as a candidate; the champion must be conditioned on them.
    """
    champion = champion_version(client, model_name)
    if champion is None:
        return None
    model = load_version_pyfunc(client, champion)  # the version resolved above, not whatever the alias says now
    # MLflow drops columns its signature does not declare (a warning only): an older version would draw "any".
    undeclared = sorted(set(attributes or {}) - set(model.metadata.get_input_schema().input_names()))
    if undeclared:
        raise ValueError(f"champion version {champion.version} takes no {undeclared} columns (logged before them)")
    frame = pd.DataFrame({SEED_COLUMN: np.asarray(base_seeds(seed, n), dtype=np.int64), **(attributes or {})})
    faces = np.asarray(model.predict(frame))
    assert faces.ndim == 4 and faces.shape[-1] == 3, f"champion returned {faces.shape}, expected N×H×W×3"
    return np.ascontiguousarray(faces.transpose(0, 3, 1, 2))
