"""A checkpoint's copy off the node (a lost pod loses its disk): CheckpointMirror pushes each new version to a real S3
(moto on 127.0.0.1) while training, once more at exit, and says so loudly when the store cannot take it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError

from facegen.train.checkpoint import CHECKPOINT_FILE, CheckpointMirror, checkpoint_key, s3_download, s3_upload

BUCKET = "facegen-checkpoints"


def _write(path: Path, payload: bytes) -> None:
    """As save_checkpoint does: a new file renamed over the old one."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_bytes(payload)
    partial.replace(path)


def _wait_for(client: Any, key: str, payload: bytes, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == payload:
                return
        except client.exceptions.NoSuchKey:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{key} never held the expected version")


def test_each_new_version_is_copied_while_training_and_the_last_at_exit(s3_env: Any, tmp_path: Path) -> None:
    s3_env.create_bucket(Bucket=BUCKET)
    key = checkpoint_key(f"s3://{BUCKET}/store/", "run-1", "train_gan")
    assert key == f"s3://{BUCKET}/store/checkpoints/run-1/train_gan/{CHECKPOINT_FILE}"
    object_key = key.removeprefix(f"s3://{BUCKET}/")
    local = tmp_path / "node" / CHECKPOINT_FILE
    local.parent.mkdir()
    assert s3_download(key, tmp_path / "fetched.pt") is False  # a first attempt finds nothing to resume

    with CheckpointMirror(local, lambda path: s3_upload(path, key), interval_s=0.05):
        _write(local, b"step 2")
        _wait_for(s3_env, object_key, b"step 2")  # while the run goes on, not only at its end
        _write(local, b"step 4 and more")
        _write(local, b"step 6, the last")  # written just before the exit: the exit's copy catches it
    assert s3_env.get_object(Bucket=BUCKET, Key=object_key)["Body"].read() == b"step 6, the last"

    assert s3_download(key, tmp_path / "retry" / CHECKPOINT_FILE) is True  # what a retried step's empty disk gets
    assert (tmp_path / "retry" / CHECKPOINT_FILE).read_bytes() == b"step 6, the last"


def test_a_store_that_refuses_the_checkpoint_fails_the_run_at_exit(s3_env: Any, tmp_path: Path) -> None:
    local = tmp_path / CHECKPOINT_FILE
    key = checkpoint_key(f"s3://{BUCKET}-missing", "run-1", "train_gan")  # no such bucket
    mirror = CheckpointMirror(local, lambda path: s3_upload(path, key), interval_s=0.05)
    with pytest.raises(S3UploadFailedError, match="NoSuchBucket"), mirror:
        _write(local, b"step 2")
        time.sleep(0.3)  # failed copies while training are logged and retried, not raised


def test_a_checkpoint_already_there_is_not_copied_again(tmp_path: Path) -> None:
    local = tmp_path / CHECKPOINT_FILE
    _write(local, b"restored from the store")
    pushed: list[bytes] = []
    with CheckpointMirror(local, lambda path: pushed.append(path.read_bytes()), interval_s=0.05):
        time.sleep(0.2)
    assert pushed == []


def test_only_s3_uris_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        s3_upload(tmp_path / CHECKPOINT_FILE, "/local/path/last.pt")
