"""Materializers whose content hash lets ZenML's cache recognise unchanged data, not just unchanged artifact IDs."""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from typing import Any, ClassVar, Optional

import fsspec
import pandas as pd
from zenml.enums import ArtifactType
from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from facegen.data.shards import INDEX_FILE, ROWS_FILE, ShardError, ShardSet
from steps.artifact_store import storage_options


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


class ShardSetMaterializer(BaseMaterializer):
    """A shard set (facegen.data.shards) that its step wrote under its own output URI.

    The shards are already in the artifact store when the step returns (a copy of the whole set would double the
    write), so saving only checks that the set is this artifact's and complete; loading opens it where it lies with
    the store's own credentials (never recorded in the artifact). The content hash is the index's: rows (labels,
    weights, which face each row is) and every shard's SHA-256, so an identical rebuild hits ZenML's cache.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ShardSet,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> ShardSet:
        shard_set = ShardSet(self.uri, storage_options(self.artifact_store))
        if self.expected_content_hash and self.compute_content_hash(shard_set) != self.expected_content_hash:
            raise ShardError(f"{self.uri}: the shard index changed since the artifact was saved")
        return shard_set

    def save(self, data: ShardSet) -> None:
        if data.uri != self.uri.rstrip("/"):
            raise ValueError(
                f"a shard set is saved where its step wrote it: write it under "
                f"get_step_context().get_output_artifact_uri(...) ({self.uri}), not {data.uri}"
            )
        fs, root = fsspec.core.url_to_fs(data.uri, **data.storage_options)
        stored = {PurePosixPath(entry["name"]).name: entry["size"] for entry in fs.ls(root, detail=True, refresh=True)}
        missing = [f for f in (INDEX_FILE, ROWS_FILE) if f not in stored]
        missing += [s.name for s in data.shards if stored.get(s.name) != s.bytes]
        if missing:
            raise ShardError(f"{data.uri}: missing, or not of the indexed size: {missing}")

    def extract_metadata(self, data: ShardSet) -> dict[str, MetadataType]:
        return {
            "rows": len(data),
            "images": int(data.index["images"]),
            "resolution": data.resolution,
            "shards": len(data.shards),
            "bytes_on_store": sum(s.bytes for s in data.shards),
        }

    def compute_content_hash(self, data: ShardSet) -> Optional[str]:
        index = data.index
        identity = [index["format"], index["resolution"], index["rows_sha256"], [s["sha256"] for s in index["shards"]]]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()
