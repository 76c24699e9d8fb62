"""Folder, zip and S3 sources list the same way and read back exactly the stored bytes."""

from __future__ import annotations

import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from facegen.data.manifest import build_manifest
from facegen.data.sources import FolderSource, S3Source, ZipSource, open_source, read_entry
from tests.s3_server import AWS_VARIABLES, aws_env


@pytest.fixture(scope="module")
def faces(utkface_zip: Path) -> dict[str, bytes]:
    """The first three UTKFace members (name -> JPEG bytes), read from the shared zip."""
    with zipfile.ZipFile(utkface_zip) as archive:
        return {name.rsplit("/", 1)[-1]: archive.read(name) for name in sorted(archive.namelist())[:3]}


# ------------------------------------------------------------------------------------------------- folder


def test_folder_lists_recursively_by_extension_and_reads_bytes(tmp_path: Path, faces: dict[str, bytes]) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (name_a, data_a), (name_b, data_b), _ = faces.items()
    (tmp_path / name_a).write_bytes(data_a)
    (tmp_path / "sub" / "deeper" / "FACE.JPG").write_bytes(data_b)
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "text.jpeg").write_text("listed anyway: the quality filter judges contents")

    source = open_source(str(tmp_path))
    entries = source.list_entries()

    assert isinstance(source, FolderSource)
    assert entries == sorted(
        [str(tmp_path / name_a), str(tmp_path / "sub/deeper/FACE.JPG"), str(tmp_path / "sub/text.jpeg")]
    )
    assert source.read_bytes(str(tmp_path / name_a)) == data_a
    assert read_entry(str(tmp_path / "sub/deeper/FACE.JPG")) == data_b
    assert read_entry((tmp_path / "sub/deeper/FACE.JPG").as_uri()) == data_b
    assert open_source((tmp_path / "sub").as_uri()).list_entries() == entries[1:]


def test_folder_does_not_follow_symlinks_out_of_the_root(tmp_path: Path, faces: dict[str, bytes]) -> None:
    outside, root = tmp_path / "outside", tmp_path / "root"
    outside.mkdir()
    root.mkdir()
    data = next(iter(faces.values()))
    (outside / "secret.jpg").write_bytes(data)
    (root / "inside.jpg").write_bytes(data)
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    (root / "alias.jpg").symlink_to(root / "inside.jpg")
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)

    source = open_source(str(root))

    assert source.list_entries() == [str(root / "alias.jpg"), str(root / "inside.jpg")]
    assert source.refused == [(str(root / "escape.jpg"), "symlink points outside the source root")]
    with pytest.raises(ValueError, match="not inside source"):
        source.read_bytes(str(root / "escape.jpg"))


# ---------------------------------------------------------------------------------------------------- zip


def test_zip_lists_members_refuses_unsafe_paths_and_reads_in_place(tmp_path: Path, faces: dict[str, bytes]) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in faces.items():
            out.writestr(f"faces/{name}", data)
        out.writestr("faces/readme.txt", "ignored")
        out.writestr("../evil.jpg", b"x")
        out.writestr("faces/../../evil2.png", b"x")
        out.writestr("/etc/abs.jpg", b"x")

    source = open_source(str(archive))
    entries = source.list_entries()

    assert isinstance(source, ZipSource)
    assert entries == [f"zip://{archive}!/faces/{name}" for name in sorted(faces)]
    assert sorted(source.refused) == [
        ("../evil.jpg", "parent-directory ('..') component"),
        ("/etc/abs.jpg", "absolute path"),
        ("faces/../../evil2.png", "parent-directory ('..') component"),
    ]
    name, data = next(iter(faces.items()))
    assert source.read_bytes(f"zip://{archive}!/faces/{name}") == data
    assert read_entry(f"zip://{archive}!/faces/{name}") == data
    with pytest.raises(ValueError, match="unsafe"):
        read_entry(f"zip://{archive}!/../evil.jpg")
    with pytest.raises(FileNotFoundError, match="no member"):
        read_entry(f"zip://{archive}!/faces/missing.jpg")


def test_zip_reads_are_safe_from_many_threads(tmp_path: Path, faces: dict[str, bytes]) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in faces.items():
            out.writestr(name, data)
    uris = [f"zip://{archive}!/{name}" for name in faces] * 20

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(read_entry, uris))

    assert results == [faces[uri.rsplit("/", 1)[-1]] for uri in uris]


def test_shared_utkface_zip_lists_every_face(utkface_zip: Path) -> None:
    source = open_source(str(utkface_zip))
    entries = source.list_entries()

    assert len(entries) == 23_207
    assert source.refused == []
    assert entries[0].startswith(f"zip://{utkface_zip}!/UTKFace/")
    assert read_entry(entries[0])[:2] == b"\xff\xd8"  # JPEG start-of-image marker


def test_missing_paths_and_unknown_schemes_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_source(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="unsupported source 'gs://bucket/faces'"):
        open_source("gs://bucket/faces")
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a folder nor a zip"):
        open_source(str(tmp_path / "plain.txt"))
    with pytest.raises(ValueError, match="unsupported entry URI"):
        read_entry("http://example.com/face.jpg")


# ----------------------------------------------------------------------------------------------------- s3


@pytest.fixture(scope="module")
def s3_endpoint(s3_server: str, tmp_path_factory: pytest.TempPathFactory):
    """The session's moto S3 server (tests/s3_server.py, 127.0.0.1 only), with dummy credentials in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for key in AWS_VARIABLES:
            patch.delenv(key, raising=False)
        for key, value in aws_env(s3_server, tmp_path_factory.mktemp("aws")).items():
            patch.setenv(key, value)
        yield s3_server


@pytest.fixture(scope="module")
def s3_bucket(s3_endpoint: str, faces: dict[str, bytes]) -> str:
    """Bucket ``faces`` with the real faces under ``utk/`` plus decoys that must not be listed."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="faces")
    for name, data in faces.items():
        client.put_object(Bucket="faces", Key=f"utk/{name}", Body=data)
    client.put_object(Bucket="faces", Key="utk/sub/", Body=b"")  # "folder" marker
    client.put_object(Bucket="faces", Key="utk/labels.csv", Body=b"a,b")
    client.put_object(Bucket="faces", Key="utk2/other.jpg", Body=b"x")
    return "faces"


def test_s3_lists_prefix_as_folder_and_reads(s3_bucket: str, faces: dict[str, bytes]) -> None:
    source = open_source(f"s3://{s3_bucket}/utk")
    entries = source.list_entries()

    assert isinstance(source, S3Source)
    assert source.uri == "s3://faces/utk/"
    assert entries == [f"s3://faces/utk/{name}" for name in sorted(faces)]
    name, data = next(iter(faces.items()))
    assert source.read_bytes(f"s3://faces/utk/{name}") == data
    assert read_entry(f"s3://faces/utk/{name}") == data
    with pytest.raises(FileNotFoundError, match="no S3 object"):
        read_entry("s3://faces/utk/missing.jpg")


def test_s3_listing_follows_pagination(s3_endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="many")
    keys = [f"p/{i:05d}.png" for i in range(1_003)]  # list_objects_v2 pages hold at most 1,000 keys
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket="many", Key=key, Body=b""), keys))

    assert open_source("s3://many/p/", s3_client=client).list_entries() == [f"s3://many/{key}" for key in keys]


def test_s3_missing_bucket_is_file_not_found(s3_endpoint: str) -> None:
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket/"):
        open_source("s3://no-such-bucket/x").list_entries()


def test_manifest_from_s3_carries_filename_labels(s3_bucket: str, faces: dict[str, bytes]) -> None:
    manifest = build_manifest(f"s3://{s3_bucket}/utk/", progress=False)

    assert manifest["uri"].tolist() == [f"s3://faces/utk/{name}" for name in sorted(faces)]
    assert manifest["label_source"].eq("filename").all()
    assert manifest["width"].eq(200).all()
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
