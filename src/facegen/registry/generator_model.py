"""A generator bundle as an MLflow pyfunc model: a registered version loads and samples with plain MLflow.

    model = mlflow.pyfunc.load_model("models:/facegen-generator@champion")
    faces = model.predict(pd.DataFrame({"seed": [1, 2, 3]}))  # uint8, 3×H×W×3 (channels last)

One face per input row; the row's ``seed`` alone decides the face (its latent is drawn from a private generator seeded
with it, see :func:`facegen.models.sampling.seeded_latents`), so the same seed gives the same face on any machine and
in any position of a request.

The model's files are the bundle (``generator.pt`` + ``generator.json``, no pickle of the network) plus MLflow's
cloudpickle of :class:`GeneratorPyfunc`, which refers to this module by name. Loading therefore needs the ``facegen``
package importable (installed in the serving image / the environment that loads it); it is not on PyPI, so it is
not in the model's pip requirements and no ``code_paths`` are shipped with the model.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

from facegen.models.bundle import load_generator_bundle
from facegen.models.sampling import seeded_latents, to_uint8

#: Key of the bundle directory in the pyfunc's artifacts.
BUNDLE_ARTIFACT = "generator_bundle"
#: Rows generated per forward pass in ``predict``.
PREDICT_BATCH_SIZE = 64


def _pip_requirements() -> list[str]:
    """What the model needs from PyPI besides facegen itself: torch (without a local +cuXXX tag), numpy, pandas."""
    torch_version = torch.__version__.split("+")[0]
    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch_version}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def _seeds(model_input: Any) -> np.ndarray:
    """The ``seed`` column as int64, rejecting missing, fractional or out-of-range values with a clear error."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame with a 'seed' column, got {type(model_input).__name__}")
    if "seed" not in model_input.columns:
        raise ValueError(f"input needs a 'seed' column, got columns {list(model_input.columns)}")
    seeds = model_input["seed"]
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


class GeneratorPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc around a generator bundle: DataFrame of seeds in, uint8 faces N×H×W×3 out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.generator = load_generator_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]), device=self.device)

    @torch.no_grad()
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """One face per row of ``model_input`` (column ``seed``), as uint8 N×H×W×3 with channels last.

        Conditional generators get every attribute as −1 ("unspecified"); requests for attributes go through the
        service, which reads the bundle directly.
        """
        seeds = _seeds(model_input)
        generator = self.generator
        resolution = generator.resolution
        if len(seeds) == 0:
            return np.zeros((0, resolution, resolution, 3), dtype=np.uint8)
        # Each row's latent comes from its own seeded generator, so a face depends on its seed only.
        latents = torch.cat([seeded_latents(1, generator.latent_dim, int(seed)) for seed in seeds])
        chunks = []
        for start in range(0, len(latents), PREDICT_BATCH_SIZE):
            batch = latents[start : start + PREDICT_BATCH_SIZE].to(self.device)
            if getattr(generator, "conditional", False):
                unspecified = torch.full((len(batch), len(generator.label_dims)), -1, dtype=torch.long)
                chunks.append(to_uint8(generator(batch, unspecified.to(self.device))))
            else:
                chunks.append(to_uint8(generator(batch)))
        return np.ascontiguousarray(np.concatenate(chunks).transpose(0, 2, 3, 1))


def log_generator_model(bundle_dir: Path, *, artifact_name: str = "generator") -> ModelInfo:
    """Log the bundle in ``bundle_dir`` as a pyfunc model in the active MLflow run (one is started if none is).

    The signature and input example are a one-row ``{"seed": [0]}`` frame and the face it produces. Pip
    requirements are pinned mlflow, torch, numpy and pandas only: ``facegen`` is not on PyPI, so it is neither listed
    nor shipped (``code_paths=None``); whoever loads the model must have the facegen package installed.
    Register the result with ``model_info.model_uri`` (``models:/<model_id>``).
    """
    bundle_dir = Path(bundle_dir)
    # The example output comes from a throwaway instance: the logged one must stay empty so that MLflow's pickle of
    # it holds no network (the weights travel as the bundle artifact only).
    probe = GeneratorPyfunc()
    probe.device = "cpu"
    probe.generator = load_generator_bundle(bundle_dir)
    example = pd.DataFrame({"seed": np.array([0], dtype=np.int64)})
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: seeds never are missing.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        signature = infer_signature(example, probe.predict(None, example))
    return mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=GeneratorPyfunc(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=_pip_requirements(),
        code_paths=None,
    )
