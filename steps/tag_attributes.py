"""tag_attributes: gender / age_bin / ethnicity for every kept face from `facegen-attributes`, plus the label audit.

Resolves the registered classifier ``model_name@alias``; fails with the command to train one when there is none.
With ``enabled: false`` (tiny test configs) it only copies the file-name labels into the ``attr_*`` columns that
balancing reads, so the rest of the pipeline runs unchanged.
"""

from typing import Annotated, Optional

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger

from facegen.attributes_model.registry import TRAIN_COMMAND, load_attribute_classifier
from facegen.data.tagging import label_only_attributes, tag_kept_rows, tagging_summary
from facegen.registry.model_registry import version_by_alias
from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME
from facegen.registry.tracking import mlflow_client
from steps.materializers import ManifestMaterializer

logger = get_logger(__name__)


@step(output_materializers=ManifestMaterializer)
def tag_attributes(
    screened_manifest: pd.DataFrame,
    enabled: bool = True,
    model_name: str = ATTRIBUTES_MODEL_NAME,
    alias: str = ATTRIBUTES_ALIAS,
    min_confidence: float = 0.8,
    audit_confidence: float = 0.9,
    min_attribute_confidence: Optional[float] = None,
    missing_model: str = "fail",
    workers: int = 2,
) -> Annotated[pd.DataFrame, "tagged_manifest"]:
    """Same rows as the input; kept rows gain predicted_* / confidence_* / attr_* columns and ``label_audit``.

    ``missing_model``: ``fail`` (default) stops with the command that trains the classifier when none is
    registered; ``warn`` falls back to file-name labels with a warning.
    ``min_attribute_confidence`` (optional) quarantines kept faces whose ``attribute_confidence`` (the classifier's
    geometric-mean confidence, a learned quality score) falls below it, with reason ``low_confidence``.
    """
    if missing_model not in ("fail", "warn"):
        raise ValueError(f"missing_model must be 'fail' or 'warn', got {missing_model!r}")
    client = mlflow_client(mlflow.get_tracking_uri())  # the server ZenML's MLflow tracker logs this run to
    if enabled and version_by_alias(client, model_name, alias) is None and missing_model == "warn":
        logger.warning(
            "no registered %s@%s: tagging with file-name labels only. Train the classifier with `%s`",
            model_name,
            alias,
            TRAIN_COMMAND,
        )
        enabled = False
    if not enabled:
        tagged = label_only_attributes(screened_manifest)
        log_metadata(metadata={"enabled": False, **tagging_summary(tagged)})
        return tagged
    classifier, version = load_attribute_classifier(client, model_name, alias)
    tagged = tag_kept_rows(
        screened_manifest,
        classifier,
        min_confidence=min_confidence,
        audit_confidence=audit_confidence,
        min_attribute_confidence=min_attribute_confidence,
        workers=workers,
    )
    summary = tagging_summary(tagged)
    mlflow.log_params({"attribute_model": f"{model_name}@{alias}", "attribute_model_version": version.version})
    mlflow.log_metrics({f"tag_{key}": float(value) for key, value in summary.items()})
    audit = tagged[tagged["label_audit"].notna()][["uri", "label_audit"]]
    mlflow.log_text(audit.to_csv(index=False), "data/label_audit.csv")
    log_metadata(metadata={"model_version": version.version, **summary})
    return tagged
