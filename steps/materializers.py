"""Materializers whose content hash lets ZenML's cache recognise unchanged data, not just unchanged artifact IDs."""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import pandas as pd
from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer


class ManifestMaterializer(PandasMaterializer):
    """A manifest DataFrame stored as parquet, hashed by content.

    ``ingest`` always runs (its source may have changed); downstream steps still hit the cache when the manifest it
    produced is identical, because their cache key uses this hash instead of the new artifact's ID.
    """

    def compute_content_hash(self, data: Any) -> Optional[str]:
        digest = hashlib.sha256()
        digest.update(",".join(map(str, data.columns)).encode())
        digest.update(pd.util.hash_pandas_object(data.astype(str), index=True).values.tobytes())
        return digest.hexdigest()
