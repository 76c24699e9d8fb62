"""export_human_eval: pairwise sets (generated vs real; candidate vs champion) as an HTML page and rater CSVs."""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import mlflow
import numpy as np
from zenml import log_metadata, step
from zenml.logger import get_logger

from facegen.humaneval.export import export_pairwise_set
from facegen.models.bundle import load_generator_bundle
from facegen.models.sampling import generate_images
from facegen.registry.champion import champion_generator_images

logger = get_logger(__name__)


@step
def export_human_eval(
    generator_bundle: Path,
    packed_dataset: np.ndarray,
    n_pairs: int = 50,
    model_name: str = "facegen-generator",
    seed: int = 0,
) -> Annotated[Path, "human_eval_set"]:
    """Stored as a ZenML artifact and as MLflow run artifacts under ``human_eval/`` (raters get ``rater/``)."""
    generated = generate_images(load_generator_bundle(generator_bundle), 2 * n_pairs, seed=seed + 2_000_003)
    champion: Optional[np.ndarray] = champion_generator_images(model_name, n=n_pairs, seed=seed + 3_000_017)
    note = None
    if champion is not None and champion.shape[2:] != generated.shape[2:]:
        note = f"champion generates {champion.shape[-1]}px, candidate {generated.shape[-1]}px: pair skipped"
        logger.warning("candidate_vs_champion not exported: %s", note)
        champion = None
    out_dir = Path(tempfile.mkdtemp(prefix="facegen-human-eval-"))
    export_pairwise_set(generated, packed_dataset, out_dir, n_pairs=n_pairs, seed=seed, champion=champion)
    mlflow.log_artifacts(str(out_dir), artifact_path="human_eval")
    log_metadata(metadata={"n_pairs": n_pairs, "with_champion": champion is not None, "champion_note": note or ""})
    return out_dir
