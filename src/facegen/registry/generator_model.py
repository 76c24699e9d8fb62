"""A generator bundle as an MLflow pyfunc model: a registered version loads and samples with plain MLflow.

    model = mlflow.pyfunc.load_model("models:/facegen-generator@champion")
    faces = model.predict(pd.DataFrame({"seed": [1, 2, 3]}))  # uint8, 3×H×W×3 (channels last)
    faces = model.predict(pd.DataFrame({"seed": [4, 4], "truncation": [1.0, 0.7], "gender": ["female", None]}))

One face per input row. A seed is one face: the row's ``seed``, ``truncation`` and attributes decide it, drawn by
:func:`facegen.models.sampling.faces_from_seeds` like everywhere else (evaluation, the service, the feedback export),
so the same row gives the same face on any machine and in any position of a request. Input columns:
- ``seed`` (required): integer in [0, 2⁶³);
- ``truncation`` (optional): psi in [0, 1]; missing (column or value) = 1.0, no truncation;
- ``gender``, ``age_bin``, ``ethnicity`` (optional): values from :mod:`facegen.attributes`; missing (column, None or
  NaN) = unspecified. A column for an attribute the model is not conditioned on is an error, whatever its values.

The model's files are the bundle (``generator.pt`` + ``generator.json``, no pickle of the network) plus MLflow's
cloudpickle of :class:`GeneratorPyfunc`, which refers to this module by name. Loading therefore needs the ``facegen``
package importable (installed in the serving image / the environment that loads it); it is not on PyPI, so it is
not in the model's pip requirements and no ``code_paths`` are shipped with the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.devices import resolve_device
from facegen.models.bundle import load_generator_bundle
from facegen.models.conditioning import encode_labels
from facegen.models.sampling import faces_from_seeds

#: Key of the bundle directory in the pyfunc's artifacts.
BUNDLE_ARTIFACT = "generator_bundle"
#: Rows generated per forward pass in ``predict``.
PREDICT_BATCH_SIZE = 64
SEED_COLUMN = "seed"
TRUNCATION_COLUMN = "truncation"
ATTRIBUTE_COLUMNS: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)
#: psi of a row that gives none: the untruncated face.
DEFAULT_TRUNCATION = 1.0

LabelRow = tuple[int, ...]


def _pip_requirements() -> list[str]:
    """What the model needs from PyPI besides facegen itself: torch (without a local +cuXXX tag), numpy, pandas."""
    torch_version = torch.__version__.split("+")[0]
    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch_version}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def input_schema() -> Schema:
    """``seed`` required; ``truncation`` and EVERY attribute column optional, whatever the model is conditioned on.

    MLflow drops undeclared columns with a warning only: declared, an attribute the model cannot honour reaches
    ``predict`` and is refused instead of silently ignored.
    """
    return Schema(
        [
            ColSpec("long", SEED_COLUMN),
            ColSpec("double", TRUNCATION_COLUMN, required=False),
            *(ColSpec("string", name, required=False) for name in ATTRIBUTE_COLUMNS),
        ]
    )


def _input_frame(model_input: Any) -> pd.DataFrame:
    """The input as a DataFrame with a ``seed`` column."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame with a 'seed' column, got {type(model_input).__name__}")
    if SEED_COLUMN not in model_input.columns:
        raise ValueError(f"input needs a 'seed' column, got columns {list(model_input.columns)}")
    return model_input


def _seeds(frame: pd.DataFrame) -> np.ndarray:
    """The ``seed`` column as int64, rejecting missing, fractional or out-of-range values with a clear error."""
    seeds = frame[SEED_COLUMN]
    if seeds.isna().any():
        raise ValueError("'seed' has missing values")
    values = seeds.to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        as_float = values.astype(float)
        if not np.all(np.equal(np.floor(as_float), as_float)):
            raise ValueError("'seed' must hold integers")
        values = as_float.astype(np.int64)
    values = values.astype(np.int64)
    if (values < 0).any():
        raise ValueError("'seed' must be non-negative")
    return values


def _truncations(frame: pd.DataFrame) -> np.ndarray:
    """psi per row as float64: the ``truncation`` column, missing values (or no column) = ``DEFAULT_TRUNCATION``."""
    if TRUNCATION_COLUMN not in frame.columns:
        return np.full(len(frame), DEFAULT_TRUNCATION)
    values = frame[TRUNCATION_COLUMN].to_numpy(dtype=float)  # the signature declares it double: MLflow checked
    values = np.where(np.isnan(values), DEFAULT_TRUNCATION, values)
    outside = sorted(set(values[(values < 0) | (values > 1)].tolist()))
    if outside:
        raise ValueError(f"'truncation' must lie in [0, 1] (missing = {DEFAULT_TRUNCATION}), got {outside}")
    return values


def _unspecified(value: Any) -> bool:
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def _label_rows(frame: pd.DataFrame, label_dims: dict[str, int]) -> list[LabelRow] | None:
    """One label row per input row from the attribute columns (None/NaN = −1), None for an unconditional model."""
    given = [name for name in ATTRIBUTE_COLUMNS if name in frame.columns]
    refused = [name for name in given if name not in label_dims]
    if refused:
        why = f"it is conditioned on {list(label_dims)} only" if label_dims else "it is unconditional"
        raise ValueError(f"the model cannot condition on the input column(s) {refused}: {why}")
    if not label_dims:
        return None
    columns = [frame[name].tolist() for name in given]
    encoded: dict[tuple[Any, ...], LabelRow] = {}  # each distinct request is validated and encoded once
    rows = []
    for index in range(len(frame)):
        request = tuple(None if _unspecified(values[index]) else values[index] for values in columns)
        if request not in encoded:
            row = encode_labels(label_dims, dict(zip(given, request, strict=True)))
            encoded[request] = tuple(int(value) for value in row.tolist())
        rows.append(encoded[request])
    return rows


PassKey = tuple[float, LabelRow | None]


def _forward_passes(truncations: np.ndarray, labels: list[LabelRow] | None) -> dict[PassKey, list[int]]:
    """Input rows grouped by (psi, label row): each group is one ``faces_from_seeds`` call."""
    groups: dict[PassKey, list[int]] = {}
    for index, psi in enumerate(truncations.tolist()):
        groups.setdefault((psi, None if labels is None else labels[index]), []).append(index)
    return groups


class GeneratorPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc around a generator bundle: DataFrame of seeds (+ truncation, attributes) in, uint8 N×H×W×3 out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.device = resolve_device()
        self.generator = load_generator_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]), device=self.device)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """One face per row of ``model_input`` (see the module doc for its columns), uint8 N×H×W×3, channels last."""
        frame = _input_frame(model_input)
        seeds = _seeds(frame)
        truncations = _truncations(frame)
        labels = _label_rows(frame, dict(self.generator.label_dims))
        resolution = self.generator.resolution
        faces = np.zeros((len(seeds), resolution, resolution, 3), dtype=np.uint8)
        for (psi, label_row), rows in _forward_passes(truncations, labels).items():
            drawn = faces_from_seeds(
                self.generator,
                seeds[rows].tolist(),
                labels=label_row,
                truncation_psi=psi,
                device=self.device,
                batch_size=PREDICT_BATCH_SIZE,
            )
            faces[rows] = drawn.transpose(0, 2, 3, 1)
        return faces


def input_example(label_dims: dict[str, int]) -> pd.DataFrame:
    """Two rows: seed 0 untruncated and unspecified; seed 1 at psi 0.7 asking for each conditioned attribute's first
    value (attribute columns only for the attributes the model is conditioned on)."""
    example: dict[str, Any] = {SEED_COLUMN: np.array([0, 1], dtype=np.int64), TRUNCATION_COLUMN: [1.0, 0.7]}
    for name in label_dims:
        example[name] = [None, ATTRIBUTE_VALUES[name][0]]
    return pd.DataFrame(example)


def log_generator_model(bundle_dir: Path, *, artifact_name: str = "generator") -> ModelInfo:
    """Log the bundle in ``bundle_dir`` as a pyfunc model in the active MLflow run (one is started if none is).

    The signature declares the input columns of the module doc (:func:`input_schema`) and the faces' tensor; the input
    example is :func:`input_example` for the bundle's conditioning. Pip requirements are pinned mlflow, torch, numpy
    and pandas only: ``facegen`` is not on PyPI, so it is neither listed nor shipped (``code_paths=None``); whoever
    loads the model must have the facegen package installed.
    Register the result with ``model_info.model_uri`` (``models:/<model_id>``).
    """
    bundle_dir = Path(bundle_dir)
    # The example output comes from a throwaway instance: the logged one must stay empty so that MLflow's pickle of
    # it holds no network (the weights travel as the bundle artifact only).
    probe = GeneratorPyfunc()
    probe.device = "cpu"
    probe.generator = load_generator_bundle(bundle_dir)
    example = input_example(dict(probe.generator.label_dims))
    faces = infer_signature(None, probe.predict(None, example)).outputs
    signature = ModelSignature(inputs=input_schema(), outputs=faces)
    return mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=GeneratorPyfunc(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=_pip_requirements(),
        code_paths=None,
    )
