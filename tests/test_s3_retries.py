"""Ingest from s3:// survives transient S3 failures and names the URI when a failure is permanent.

Failures are injected into real requests to moto's S3 server on 127.0.0.1 with botocore event hooks: a
``before-send`` hook answers the first N requests of an operation itself with an S3 error (HTTP 500 InternalError,
503 SlowDown, 403 AccessDenied) instead of sending them; an ``after-call`` hook swaps a response body for one that
breaks off mid-stream. Retries are counted at the hooks (every attempt passes ``before-send``).
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ResponseStreamingError

from facegen.data import sources
from facegen.data.manifest import build_manifest
from facegen.data.sources import S3_MAX_ATTEMPTS, default_s3_client, open_source, read_entry

BUCKET = "retry-faces"
ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
    403: ("AccessDenied", "Access Denied"),
}


class _Raw:
    """The ``raw`` of an injected AWSResponse: botocore reads it with ``stream()``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any):
        yield self.body


class FailureInjector:
    """Answers the first ``failures`` requests of ``operation`` with ``statuses`` (cycled); counts every attempt."""

    def __init__(self, client: Any, operation: str, failures: int, statuses: tuple[int, ...] = (500,)) -> None:
        self.failures, self.statuses = failures, statuses
        self.attempts = 0
        self._lock = threading.Lock()
        client.meta.events.register(f"before-send.s3.{operation}", self._before_send)

    def _before_send(self, request: Any, **_kwargs: Any) -> AWSResponse | None:
        with self._lock:
            self.attempts += 1
            attempt = self.attempts
        if attempt > self.failures:
            return None  # send it for real
        status = self.statuses[(attempt - 1) % len(self.statuses)]
        code, message = ERRORS[status]
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body.encode()))

    @property
    def injected(self) -> int:
        return min(self.attempts, self.failures)


class _BrokenBody:
    def read(self, *_args: Any) -> bytes:
        raise ResponseStreamingError(error="Connection broken: IncompleteRead(100 bytes read, 900 more expected)")

    def close(self) -> None:
        pass


class BodyBreaker:
    """Makes the body of the first ``failures`` GetObject responses break off mid-stream."""

    def __init__(self, client: Any, failures: int) -> None:
        self.failures, self.calls = failures, 0
        client.meta.events.register("after-call.s3.GetObject", self._after_call)

    def _after_call(self, parsed: dict, **_kwargs: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures and "Body" in parsed:
            parsed["Body"].close()
            parsed["Body"] = _BrokenBody()


@pytest.fixture
def faces(utkface_zip: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(utkface_zip) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[:6]
        return {name.rsplit("/", 1)[-1]: archive.read(name) for name in names}


@pytest.fixture
def bucket(s3_env, faces: dict[str, bytes]) -> str:
    """Bucket with the faces under ``faces/``; the S3 clients facegen builds are fresh for each test."""
    s3_env.create_bucket(Bucket=BUCKET)
    for key in [obj["Key"] for obj in s3_env.list_objects_v2(Bucket=BUCKET).get("Contents", [])]:
        s3_env.delete_object(Bucket=BUCKET, Key=key)
    for name, data in faces.items():
        s3_env.put_object(Bucket=BUCKET, Key=f"faces/{name}", Body=data)
    return BUCKET


def test_default_client_retries_adaptively_with_a_configurable_attempt_budget(s3_env, monkeypatch) -> None:
    assert default_s3_client().meta.config.retries == {"mode": "adaptive", "total_max_attempts": S3_MAX_ATTEMPTS}
    monkeypatch.setenv("FACEGEN_S3_MAX_ATTEMPTS", "3")
    assert default_s3_client().meta.config.retries["total_max_attempts"] == 3
    monkeypatch.setenv("FACEGEN_S3_MAX_ATTEMPTS", "zero")
    with pytest.raises(ValueError, match="FACEGEN_S3_MAX_ATTEMPTS"):
        default_s3_client()


def test_listing_retries_transient_server_errors(bucket: str, faces: dict[str, bytes]) -> None:
    injector = FailureInjector(default_s3_client(), "ListObjectsV2", failures=2, statuses=(500, 503))

    entries = open_source(f"s3://{bucket}/faces").list_entries()

    assert entries == [f"s3://{bucket}/faces/{name}" for name in sorted(faces)]
    assert (injector.injected, injector.attempts) == (2, 3)  # two retries, then the real answer


def test_reads_retry_transient_server_errors_and_throttling(bucket: str, faces: dict[str, bytes]) -> None:
    injector = FailureInjector(default_s3_client(), "GetObject", failures=3, statuses=(500, 503))
    name, data = next(iter(faces.items()))

    assert read_entry(f"s3://{bucket}/faces/{name}") == data
    assert (injector.injected, injector.attempts) == (3, 4)


def test_a_body_that_breaks_off_mid_stream_is_read_again(bucket: str, faces: dict[str, bytes]) -> None:
    breaker = BodyBreaker(default_s3_client(), failures=2)
    name, data = next(iter(faces.items()))

    assert read_entry(f"s3://{bucket}/faces/{name}") == data
    assert breaker.calls == 3  # two broken bodies, then a whole one


def test_ingest_from_s3_succeeds_through_transient_failures(bucket: str, faces: dict[str, bytes]) -> None:
    client = default_s3_client()
    listing = FailureInjector(client, "ListObjectsV2", failures=1)
    reads = FailureInjector(client, "GetObject", failures=4, statuses=(500, 503))
    breaker = BodyBreaker(client, failures=1)

    manifest = build_manifest(f"s3://{bucket}/faces/", progress=False)

    assert manifest["uri"].tolist() == [f"s3://{bucket}/faces/{name}" for name in sorted(faces)]
    expected = [hashlib.sha256(faces[name]).hexdigest() for name in sorted(faces)]
    assert manifest["sha256"].tolist() == expected  # every byte arrived despite the failures
    assert listing.injected == 1 and reads.injected == 4 and breaker.calls == len(faces) + 1
    assert reads.attempts == len(faces) + 4 + 1  # one retry per injected failure, one re-read of the broken body


def test_permanent_read_failure_raises_naming_the_uri(bucket: str, faces: dict[str, bytes], monkeypatch) -> None:
    monkeypatch.setenv("FACEGEN_S3_MAX_ATTEMPTS", "3")
    injector = FailureInjector(default_s3_client(), "GetObject", failures=10**6)
    uri = f"s3://{bucket}/faces/{sorted(faces)[0]}"

    with pytest.raises(OSError, match=f"could not read S3 object '{uri}'.*InternalError") as error:
        read_entry(uri)
    assert "reached max retries: 2" in str(error.value)  # botocore's own account: 3 attempts in all
    assert injector.attempts == 3

    with pytest.raises(OSError, match=f"could not read '{uri}'"):  # ingest names the entry too
        build_manifest(f"s3://{bucket}/faces/", progress=False)


def test_permanent_listing_failure_raises_naming_the_source(bucket: str, monkeypatch) -> None:
    monkeypatch.setenv("FACEGEN_S3_MAX_ATTEMPTS", "2")
    FailureInjector(default_s3_client(), "ListObjectsV2", failures=10**6, statuses=(503,))

    with pytest.raises(OSError, match=f"could not list S3 source 's3://{bucket}/faces/'.*SlowDown"):
        build_manifest(f"s3://{bucket}/faces", progress=False)


def test_access_denied_is_not_retried_and_names_the_uri(bucket: str, faces: dict[str, bytes]) -> None:
    injector = FailureInjector(default_s3_client(), "GetObject", failures=10**6, statuses=(403,))
    uri = f"s3://{bucket}/faces/{sorted(faces)[0]}"

    with pytest.raises(OSError, match=f"could not read S3 object '{uri}'.*AccessDenied"):
        read_entry(uri)
    assert injector.attempts == 1


def test_a_body_that_keeps_breaking_off_fails_naming_the_uri(bucket: str, faces: dict[str, bytes], monkeypatch) -> None:
    monkeypatch.setenv("FACEGEN_S3_MAX_ATTEMPTS", "2")
    monkeypatch.setattr(sources, "S3_STREAM_BACKOFF_BASE_S", 0.0)
    breaker = BodyBreaker(default_s3_client(), failures=10**6)
    uri = f"s3://{bucket}/faces/{sorted(faces)[0]}"

    with pytest.raises(OSError, match=f"could not read S3 object '{uri}': the body broke off 2 times"):
        read_entry(uri)
    assert breaker.calls == 2
