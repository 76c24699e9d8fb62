"""The training set as a ZenML artifact (steps/materializers.py, steps/artifact_store.py): saved where build_dataset
wrote it (checked, never copied), loaded with the artifact store's own settings (local, or S3 with its endpoint and
keys, which never reach the artifact), hashed by content so an identical rebuild hits ZenML's cache; a set written
elsewhere, an incomplete one, or one changed after saving is an error naming it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from uuid import uuid4

import numpy as np
import pandas as pd
import pytest
from zenml.artifact_stores import LocalArtifactStore, LocalArtifactStoreConfig
from zenml.enums import StackComponentType
from zenml.integrations.s3.artifact_stores.s3_artifact_store import S3ArtifactStore
from zenml.integrations.s3.flavors.s3_artifact_store_flavor import S3ArtifactStoreConfig

from facegen.data.shards import ShardError, ShardSet, write_shards
from steps.artifact_store import storage_options
from steps.materializers import ShardSetMaterializer
from tests.s3_server import CREDENTIALS, REGION, list_keys, s3_client
from tests.test_shards import plan  # noqa: F401 - the fixture: seven faces, two oversampled, labels and weights


def _store(store_class: type, config: object, flavor: str):
    now = datetime.now()
    return store_class(
        name="facegen-test",
        id=uuid4(),
        config=config,
        flavor=flavor,
        type=StackComponentType.ARTIFACT_STORE,
        user=None,
        created=now,
        updated=now,
    )


def _files(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return _store(LocalArtifactStore, LocalArtifactStoreConfig(path=str(tmp_path / "store")), "local")


def _write(faces: pd.DataFrame, uri: str, store, **kwargs) -> ShardSet:
    options = storage_options(store)
    return write_shards(
        faces, uri, resolution=16, images_per_shard=4, storage_options=options, progress=False, **kwargs
    )


def test_saved_in_place_loaded_back_and_hashed_by_content(plan: pd.DataFrame, local_store, tmp_path: Path) -> None:
    uri = f"{local_store.path}/build_dataset/training_set/run-1"
    written = _write(plan, uri, local_store, workers=2)
    before = _files(Path(uri))
    materializer = ShardSetMaterializer(uri, artifact_store=local_store)

    materializer.save(written)

    assert _files(Path(uri)) == before  # nothing written, nothing replaced: the step's shards are the artifact
    assert sorted(before) == ["index.json", "rows.npz", "shard-000000.tar", "shard-000001.tar"]
    assert materializer.extract_metadata(written) == {
        "rows": 9,
        "images": 7,
        "resolution": 16,
        "shards": 2,
        "bytes_on_store": sum(info.bytes for info in written.shards),
    }
    materializer.expected_content_hash = materializer.compute_content_hash(written)
    loaded = materializer.load(ShardSet)
    assert loaded.uri == uri and np.array_equal(loaded.to_array(progress=False), written.to_array(progress=False))
    assert np.array_equal(loaded.labels, written.labels) and np.array_equal(
        loaded.sample_weights, plan["sample_weight"]
    )

    # The same plan rebuilt elsewhere, packed by one worker, is the same content; other weights are not.
    again = _write(plan, str(tmp_path / "again"), local_store, workers=1)
    reweighted = _write(plan.assign(sample_weight=1.0), str(tmp_path / "reweighted"), local_store)
    assert materializer.compute_content_hash(again) == materializer.expected_content_hash
    assert materializer.compute_content_hash(reweighted) != materializer.expected_content_hash


def test_a_set_elsewhere_incomplete_or_changed_since_saving_is_refused(
    plan: pd.DataFrame, local_store, tmp_path: Path
) -> None:
    uri = f"{local_store.path}/build_dataset/training_set/run-1"
    materializer = ShardSetMaterializer(uri, artifact_store=local_store)
    elsewhere = _write(plan, str(tmp_path / "elsewhere"), local_store)
    with pytest.raises(ValueError, match=r"get_output_artifact_uri.*not .*elsewhere"):
        materializer.save(elsewhere)

    written = _write(plan, uri, local_store)
    (Path(uri) / "shard-000001.tar").unlink()
    with pytest.raises(ShardError, match=r"missing, or not of the indexed size: \['shard-000001.tar'\]"):
        materializer.save(written)

    rewritten = _write(plan.iloc[:5], uri, local_store)  # the same folder now holds another set
    materializer.expected_content_hash = materializer.compute_content_hash(written)
    assert materializer.compute_content_hash(rewritten) != materializer.expected_content_hash
    with pytest.raises(ShardError, match="changed since the artifact was saved"):
        materializer.load(ShardSet)


def test_an_s3_artifact_store_is_reached_with_its_own_endpoint_and_keys(plan: pd.DataFrame, s3_server: str) -> None:
    client = s3_client(s3_server)
    client.create_bucket(Bucket="facegen-artifact-store-test")
    config = S3ArtifactStoreConfig(
        path="s3://facegen-artifact-store-test/zenml",
        key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": s3_server, "region_name": REGION},
    )
    store = _store(S3ArtifactStore, config, "s3")
    assert storage_options(store) == {
        "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "token": None,
        "client_kwargs": {"endpoint_url": s3_server, "region_name": REGION},
        "config_kwargs": None,
        "s3_additional_kwargs": None,
    }
    uri = f"{store.path}/build_dataset/training_set/run-1"
    written = _write(plan, uri, store)
    materializer = ShardSetMaterializer(uri, artifact_store=store)

    materializer.save(written)
    loaded = materializer.load(ShardSet)

    prefix = "zenml/build_dataset/training_set/run-1/"
    keys = list_keys(client, "facegen-artifact-store-test", prefix)
    assert keys == [prefix + name for name in ("index.json", "rows.npz", "shard-000000.tar", "shard-000001.tar")]
    assert np.array_equal(loaded.read_rows([8, 0]), written.to_array(progress=False)[[8, 0]])
    # What the artifact records (its objects, ZenML's metadata) holds no key: those stay with the artifact store.
    index = client.get_object(Bucket="facegen-artifact-store-test", Key=prefix + "index.json")["Body"].read().decode()
    recorded = index + json.dumps(materializer.extract_metadata(loaded))
    assert not any(secret in recorded for secret in CREDENTIALS.values())
