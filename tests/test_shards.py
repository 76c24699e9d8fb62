"""The shard set: real faces packed into WebDataset tar shards (local or S3), read back pixel-identical to the packed
array, each row with its labels and weight; damage is retried, then named, never silently fewer faces."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facegen.data.label_encoding import encode_attribute_labels
from facegen.data.packing import pack_images
from facegen.data.shards import ShardError, ShardSet, write_shards
from facegen.data.sources import open_source
from tests.s3_server import CREDENTIALS, REGION, s3_client


@pytest.fixture(scope="module")
def plan(utkface_zip: Path) -> pd.DataFrame:
    """Seven faces, two of them oversampled (nine rows), with labels and weights as balance writes them."""
    uris = open_source(str(utkface_zip)).list_entries()[:7]
    rows = uris + [uris[1], uris[4]]
    return pd.DataFrame(
        {
            "uri": rows,
            "attr_gender": ["female", "male", None, "female", "male", "female", None, "male", "male"],
            "attr_age_bin": ["20-29"] * 9,
            "attr_ethnicity": ["Asian", "Black", "White", None, "Indian", "Others", "White", "Black", "Indian"],
            "sample_weight": np.linspace(0.5, 2.0, 9),
        }
    )


def test_rows_read_back_pixel_identical_to_the_packed_array(plan: pd.DataFrame, tmp_path: Path) -> None:
    shards = write_shards(plan, str(tmp_path / "set"), resolution=32, images_per_shard=3, progress=False)

    reopened = ShardSet(str(tmp_path / "set"))
    assert len(reopened) == 9 and reopened.shape == (9, 3, 32, 32) and len(reopened.shards) == 3  # 7 faces, 3 a shard
    assert np.array_equal(reopened.to_array(progress=False), pack_images(plan, resolution=32, progress=False))
    assert np.array_equal(reopened.labels, encode_attribute_labels(plan))
    assert np.array_equal(reopened.sample_weights, plan["sample_weight"].to_numpy())
    assert list(reopened.unique_rows()) == [0, 1, 2, 3, 4, 5, 6]  # the repeats (rows 7, 8) are faces 1 and 4
    assert np.array_equal(reopened.read_rows([8, 0, 4]), shards.to_array(progress=False)[[8, 0, 4]])


def test_raw_npy_faces_read_back_pixel_identical_too(plan: pd.DataFrame, tmp_path: Path) -> None:
    shards = write_shards(plan, str(tmp_path / "set"), resolution=32, image_format="npy", progress=False)

    assert np.array_equal(shards.to_array(progress=False), pack_images(plan, resolution=32, progress=False))
    assert np.array_equal(shards.read_rows([5, 2]), shards.to_array(progress=False)[[5, 2]])
    with pytest.raises(ValueError, match="image_format must be one of"):
        write_shards(plan, str(tmp_path / "other"), resolution=32, image_format="jpeg", progress=False)


def test_shards_are_plain_webdataset_tars_whose_hashes_the_index_records(plan: pd.DataFrame, tmp_path: Path) -> None:
    import webdataset

    shards = write_shards(plan, str(tmp_path / "set"), resolution=16, images_per_shard=4, progress=False)

    first = tmp_path / "set" / shards.shards[0].name
    with tarfile.open(first) as archive:
        assert [member.name.rsplit(".", 1)[1] for member in archive.getmembers()] == ["png"] * 4
    samples = list(webdataset.WebDataset(str(first), shardshuffle=False).decode("rgb8"))
    assert len(samples) == 4 and samples[0]["png"].shape == (16, 16, 3)
    assert [info.images for info in shards.shards] == [4, 3]
    assert all(
        len(info.sha256) == 64 and info.bytes == (tmp_path / "set" / info.name).stat().st_size for info in shards.shards
    )


def test_a_corrupt_shard_is_retried_then_named(plan: pd.DataFrame, tmp_path: Path) -> None:
    shards = write_shards(plan, str(tmp_path / "set"), resolution=16, images_per_shard=4, progress=False)
    damaged = tmp_path / "set" / shards.shards[1].name
    data = bytearray(damaged.read_bytes())
    data[600] ^= 0xFF
    damaged.write_bytes(bytes(data))

    with pytest.raises(ShardError, match=r"shard shard-000001\.tar .*SHA-256 does not match .*after 3 attempts"):
        ShardSet(str(tmp_path / "set")).to_array(progress=False)
    damaged.unlink()
    with pytest.raises(ShardError, match=r"shard shard-000001\.tar .*FileNotFoundError"):
        ShardSet(str(tmp_path / "set")).decode_shard(1)


def test_a_folder_without_an_index_is_not_a_shard_set(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="no shard index"):
        len(ShardSet(str(tmp_path)))


def test_writes_to_and_streams_from_s3(plan: pd.DataFrame, s3_server: str) -> None:
    options = {
        "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "client_kwargs": {"endpoint_url": s3_server, "region_name": REGION},
    }
    client = s3_client(s3_server)
    client.create_bucket(Bucket="facegen-shards-test")

    write_shards(
        plan,
        "s3://facegen-shards-test/run/set",
        resolution=32,
        images_per_shard=4,
        storage_options=options,
        progress=False,
    )

    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="facegen-shards-test")["Contents"])
    assert keys == [f"run/set/{name}" for name in ("index.json", "rows.npz", "shard-000000.tar", "shard-000001.tar")]
    remote = ShardSet("s3://facegen-shards-test/run/set", options)
    assert np.array_equal(remote.to_array(progress=False), pack_images(plan, resolution=32, progress=False))
    assert np.array_equal(remote.read_rows([3]), pack_images(plan.iloc[[3]], resolution=32, progress=False))
