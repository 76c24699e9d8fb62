"""``facegen-attributes`` as an MLflow pyfunc whose artifact is the bundle, and loaded back by alias.

    model = mlflow.pyfunc.load_model("models:/facegen-attributes@production")
    model.predict(pd.DataFrame({"uri": ["/path/face.jpg"]}))      # → predicted_* / confidence_* columns
    classifier = model.unwrap_python_model().classifier          # tensors: classifier.predict(uint8 N×3×H×W)

As with the generator, the pickle holds no network (the weights travel as the bundle) and loading needs the facegen
package importable; registered pickles name this module, so it keeps its path. Registration and the alias are
:mod:`facegen.registry.model_registry`'s (``register_version``, ``apply_promotion``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from facegen.attributes_model.inference import AttributeClassifier
from facegen.devices import resolve_device
from facegen.registry.model_registry import load_version_pyfunc, version_by_alias
from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME

BUNDLE_ARTIFACT = "attribute_bundle"
TRAIN_COMMAND = "zenml pipeline run pipelines.attributes.attributes -c configs/attributes.yaml"


class AttributePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc: DataFrame with a ``uri`` column (files / entry URIs) → predictions per row."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        device = resolve_device()
        self.classifier = AttributeClassifier.from_bundle(context.artifacts[BUNDLE_ARTIFACT], device=device)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame) or "uri" not in model_input.columns:
            raise ValueError("input needs a 'uri' column of image paths or entry URIs")
        return self.classifier.predict_files(model_input["uri"].astype(str).tolist()).to_frame()


def log_attribute_model(bundle_dir: Path, *, artifact_name: str = "attributes"):
    """Log the bundle as a pyfunc model in the active MLflow run; returns MLflow's ``ModelInfo``."""
    torch_version = torch.__version__.split("+")[0]
    return mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=AttributePyfunc(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        pip_requirements=[
            f"mlflow=={mlflow.__version__}",
            f"torch=={torch_version}",
            f"numpy=={np.__version__}",
            f"pandas=={pd.__version__}",
        ],
    )


def load_attribute_classifier(
    client: MlflowClient, name: str = ATTRIBUTES_MODEL_NAME, alias: str = ATTRIBUTES_ALIAS
) -> tuple[AttributeClassifier, ModelVersion]:
    """The classifier registered as ``name@alias`` in ``client``'s registry, with its version.

    ``LookupError`` naming the command that trains one when the model or the alias does not exist.
    """
    version = version_by_alias(client, name, alias)
    if version is None:
        raise LookupError(
            f"no registered model {name}@{alias} in the MLflow registry at {client.tracking_uri}. "
            f"Train and register it first: `{TRAIN_COMMAND}` (or disable tagging: tag_attributes.enabled: false)"
        )
    return load_version_pyfunc(client, version).unwrap_python_model().classifier, version
