"""export_human_eval: pairwise sets (generated vs real; candidate vs champion) as an HTML page and rater CSVs."""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import mlflow
import numpy as np
from zenml import log_metadata, step
from zenml.logger import get_logger

from facegen.data.shards import ShardSet
from facegen.humaneval.export import export_pairwise_set
from facegen.metrics.samples import balance_targets, evaluation_faces
from facegen.models.bundle import load_generator_bundle
from facegen.models.sampling import base_seeds
from facegen.provenance.c2pa_manifest import faces_provenance
from facegen.registry.champion import champion_generator_images
from facegen.registry.model_registry import champion_version
from facegen.registry.names import GENERATOR_MODEL_NAME
from facegen.registry.tracking import mlflow_client

logger = get_logger(__name__)


@step
def export_human_eval(
    generator_bundle: Path,
    training_set: ShardSet,
    balance_shares: dict,
    n_pairs: int = 50,
    model_name: str = GENERATOR_MODEL_NAME,
    seed: int = 0,
) -> Annotated[Path, "human_eval_set"]:
    """Stored as a ZenML artifact and as MLflow run artifacts under ``human_eval/`` (raters get ``rater/``).

    The candidate's faces are drawn as every evaluation draws them (seed range, stratified labels), so raters see
    the demographic mix the model is gated on. The real side is ``n_pairs`` distinct training faces (seeded), the
    only ones read from the shard set.
    """
    generator = load_generator_bundle(generator_bundle)
    sample = evaluation_faces(generator, 2 * n_pairs, seed=seed + 2_000_003, targets=balance_targets(balance_shares))
    generated = sample.faces
    # The champion is asked for the same demographic requests (its own seeds), so a pair compares like with like.
    asked = {name: list(values[:n_pairs]) for name, values in (sample.requested or {}).items()}
    note = None
    client = mlflow_client(mlflow.get_tracking_uri())  # the server ZenML's MLflow tracker logs this run to
    try:
        champion: Optional[np.ndarray] = champion_generator_images(
            client, model_name, n=n_pairs, seed=seed + 3_000_017, attributes=asked or None
        )
    except ValueError as error:  # a champion conditioned on other attributes (or none): its unconditioned faces
        note = f"champion cannot take the candidate's requests ({error}): its faces are unconditioned"
        logger.warning(note)
        champion = champion_generator_images(client, model_name, n=n_pairs, seed=seed + 3_000_017)
    if champion is not None and champion.shape[2:] != generated.shape[2:]:
        note = f"champion generates {champion.shape[-1]}px, candidate {generated.shape[-1]}px: pair skipped"
        logger.warning("candidate_vs_champion not exported: %s", note)
        champion = None
    # Every generated face is marked with what made it: the candidate is registered only after the gate, so its run
    # names it; the champion's faces come from seeds seed + 3_000_017 … with the requests it was asked for.
    generated_provenance = faces_provenance(
        model_name, None, mlflow.active_run().info.run_id, sample.seeds, requested=sample.requested
    )
    champion_provenance = None
    if champion is not None:
        served = champion_version(client, model_name)
        champion_provenance = faces_provenance(
            model_name,
            served.version,
            served.run_id,
            base_seeds(seed + 3_000_017, n_pairs),
            requested=None if note else asked,
        )
    faces = training_set.unique_rows()  # each real face at most once; fewer than n_pairs is export's clear error
    picked = np.random.default_rng(seed).choice(faces, size=min(n_pairs, len(faces)), replace=False)
    real = training_set.read_rows(picked)
    out_dir = Path(tempfile.mkdtemp(prefix="facegen-human-eval-"))
    export_pairwise_set(
        generated,
        real,
        out_dir,
        n_pairs=n_pairs,
        seed=seed,
        champion=champion,
        generated_provenance=generated_provenance,
        champion_provenance=champion_provenance,
    )
    mlflow.log_artifacts(str(out_dir), artifact_path="human_eval")
    log_metadata(metadata={"n_pairs": n_pairs, "with_champion": champion is not None, "champion_note": note or ""})
    return out_dir
