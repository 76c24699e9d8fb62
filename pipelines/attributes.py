"""The `attributes` pipeline: ingest → quality_filter → train_attribute_model (registers `facegen-attributes`).

Run once, and again only when its data or settings change (the training step then reuses the registered version):
``zenml pipeline run pipelines.attributes.attributes -c configs/attributes.yaml``
"""

from zenml import pipeline

from facegen.paths import DEFAULT_SOURCE
from steps.ingest import ingest
from steps.quality_filter import quality_filter
from steps.train_attribute_model import train_attribute_model


@pipeline(name="attributes")
def attributes(source: str = DEFAULT_SOURCE, seed: int = 0) -> None:
    """Train the demographic attribute classifier on the labelled faces of ``source``."""
    manifest = ingest(source=source, seed=seed)
    screened, _quality_settings = quality_filter(manifest)
    train_attribute_model(screened, seed=seed)
