"""fsspec storage options that reach the files of a ZenML artifact store the way the store itself does.

Steps and materializers that hand a URI under the store to a library (facegen.data.shards reads and writes through
fsspec) need the store's endpoint and credentials. They are taken from the store's own settings at run time and
held in memory only: never written into an artifact, its metadata or a config.
"""

from __future__ import annotations

from typing import Any

from zenml.artifact_stores import BaseArtifactStore, LocalArtifactStore
from zenml.integrations.s3.artifact_stores.s3_artifact_store import S3ArtifactStore


def storage_options(artifact_store: BaseArtifactStore) -> dict[str, Any]:
    """The fsspec options for ``artifact_store``: none for a local store; for ZenML's S3 artifact store the s3fs
    arguments it builds for itself (keys from its secret, connector or config; ``client_kwargs`` such as the endpoint
    and region; ``config_kwargs``; ``s3_additional_kwargs``), as ``S3ArtifactStore._build_filesystem_kwargs`` does in
    zenml 0.98. Another flavor is an error naming it, rather than a guess that fails later on a shard."""
    if isinstance(artifact_store, LocalArtifactStore):
        return {}
    if isinstance(artifact_store, S3ArtifactStore):
        key, secret, token, region = artifact_store.get_credentials()
        client_kwargs: dict[str, Any] = {"region_name": region} if region else {}
        client_kwargs.update(artifact_store.config.client_kwargs or {})
        return {
            "key": key,
            "secret": secret,
            "token": token,
            "client_kwargs": client_kwargs,
            "config_kwargs": artifact_store.config.config_kwargs,
            "s3_additional_kwargs": artifact_store.config.s3_additional_kwargs,
        }
    raise ValueError(
        f"artifact store {artifact_store.name!r} is of flavor {artifact_store.flavor!r}: shard sets are written to a "
        "local or an S3 artifact store only (steps/artifact_store.py knows how to reach those)"
    )
