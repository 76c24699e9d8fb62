"""One read-only interface over the places face images live: a local folder, a zip archive or an S3 prefix.

Every image gets an *entry URI* that names it on its own, so a manifest row can be read back later
(by quality checks or packing, possibly in another process) with :func:`read_entry` and no source object:

- folder: a plain absolute path, ``/abs/dir/img.jpg`` (``file://`` URIs are accepted on input too);
- zip: ``zip:///abs/archive.zip!/member/name.jpg``;
- S3: ``s3://bucket/key``.

Listing filters on the file extension only: a text file named ``x.jpg`` is still listed, because deciding
what decodes is the quality filter's job (it quarantines such files with a reason instead of losing them).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_ZIP_PREFIX = "zip://"
_ZIP_SEPARATOR = "!/"


def is_image_name(name: str) -> bool:
    """Whether ``name`` carries an image extension (case-insensitive); contents are not checked here."""
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


class ImageSource(ABC):
    """A listable, readable collection of images.

    ``refused`` holds ``(name, reason)`` for image-named entries that :meth:`list_entries` skipped for safety
    (unsafe zip paths, symlinks leaving a folder); the manifest turns them into quarantined rows so they are
    accounted for rather than silently dropped. It is refreshed by every call to :meth:`list_entries`.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.refused: list[tuple[str, str]] = []

    @abstractmethod
    def list_entries(self) -> list[str]:
        """Sorted entry URIs of every image-named object in the source."""

    @abstractmethod
    def read_bytes(self, entry_uri: str) -> bytes:
        """Raw bytes of one entry returned by :meth:`list_entries`."""

    def refused_uri(self, name: str) -> str:
        """Entry URI a refused name would have had, so its manifest row is identifiable (it is never read)."""
        return name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


# --------------------------------------------------------------------------------------------------- folder


class FolderSource(ImageSource):
    """Images under a local directory, recursively; symlinks may not lead outside the root."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        super().__init__(str(self.root))

    def list_entries(self) -> list[str]:
        self.refused = []
        entries: list[str] = []
        # followlinks=False: symlinked directories are not descended (no cycles, no escaping the root).
        for dirpath, _dirnames, filenames in os.walk(self.root, followlinks=False):
            for filename in filenames:
                if not is_image_name(filename):
                    continue
                path = Path(dirpath) / filename
                if path.is_symlink() and not _is_within(path.resolve(), self.root):
                    self.refused.append((str(path), "symlink points outside the source root"))
                    continue
                entries.append(str(path))
        return sorted(entries)

    def read_bytes(self, entry_uri: str) -> bytes:
        path = Path(_local_path(entry_uri))
        if not _is_within(path.resolve(), self.root):
            raise ValueError(f"entry {entry_uri!r} is not inside source {self.uri!r}")
        return path.read_bytes()


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _local_path(entry_uri: str) -> str:
    if entry_uri.startswith("file://"):
        return unquote(urlparse(entry_uri).path)
    return entry_uri


# ------------------------------------------------------------------------------------------------------ zip

# zipfile handles share one file position, so each thread gets its own handle per archive; keyed on the
# archive's size and mtime so a rewritten archive is reopened rather than read through a stale directory.
_zip_handles = threading.local()


def _zip_handle(archive: str) -> zipfile.ZipFile:
    stat = os.stat(archive)
    key = (archive, stat.st_size, stat.st_mtime_ns)
    handles: dict[tuple[str, int, int], zipfile.ZipFile] | None = getattr(_zip_handles, "handles", None)
    if handles is None:
        handles = _zip_handles.handles = {}
    handle = handles.get(key)
    if handle is None:
        for stale in [k for k in handles if k[0] == archive]:
            handles.pop(stale).close()
        handle = handles[key] = zipfile.ZipFile(archive)
    return handle


def unsafe_member_reason(name: str) -> str | None:
    """Why a zip member name is unsafe to trust (absolute path, drive letter, ``..``), or None when it is fine."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        return "absolute path"
    if ".." in normalised.split("/"):
        return "parent-directory ('..') component"
    return None


def zip_entry_uri(archive: str, member: str) -> str:
    """Entry URI of ``member`` inside the zip at absolute path ``archive``."""
    return f"{_ZIP_PREFIX}{archive}{_ZIP_SEPARATOR}{member}"


def _split_zip_uri(entry_uri: str) -> tuple[str, str]:
    # The first "!/" separates archive from member: archive paths containing "!/" are not supported.
    archive, separator, member = entry_uri[len(_ZIP_PREFIX) :].partition(_ZIP_SEPARATOR)
    if not separator or not member:
        raise ValueError(f"malformed zip entry URI {entry_uri!r}: expected 'zip:///abs/archive.zip!/member'")
    return archive, member


class ZipSource(ImageSource):
    """Images inside a zip archive, read in place (members are never extracted to disk)."""

    def __init__(self, archive: Path) -> None:
        self.archive = str(archive.resolve())
        super().__init__(self.archive)

    def list_entries(self) -> list[str]:
        self.refused = []
        entries: list[str] = []
        for info in _zip_handle(self.archive).infolist():
            if info.is_dir() or not is_image_name(info.filename):
                continue
            reason = unsafe_member_reason(info.filename)
            if reason is not None:
                self.refused.append((info.filename, reason))
                continue
            entries.append(zip_entry_uri(self.archive, info.filename))
        return sorted(set(entries))  # a name stored twice reads as its last copy: list it once

    def refused_uri(self, name: str) -> str:
        return zip_entry_uri(self.archive, name)

    def read_bytes(self, entry_uri: str) -> bytes:
        archive, _member = _split_zip_uri(entry_uri)
        if archive != self.archive:
            raise ValueError(f"entry {entry_uri!r} is not inside source {self.uri!r}")
        return _read_zip_entry(entry_uri)


def _read_zip_entry(entry_uri: str) -> bytes:
    archive, member = _split_zip_uri(entry_uri)
    if unsafe_member_reason(member) is not None:
        raise ValueError(f"refusing to read unsafe zip member {entry_uri!r}")
    try:
        return _zip_handle(archive).read(member)
    except KeyError:
        raise FileNotFoundError(f"no member {member!r} in zip archive {archive!r}") from None


# ------------------------------------------------------------------------------------------------------- s3

#: Attempts per S3 request, the first included (``FACEGEN_S3_MAX_ATTEMPTS`` overrides). botocore retries throttling,
#: 5xx answers and connection errors itself, with exponential backoff and jitter ("adaptive" mode = "standard" plus
#: client-side rate limiting when S3 throttles); a body that breaks off mid-stream is retried here the same number of
#: times, because botocore's retries end once the response headers have arrived.
S3_MAX_ATTEMPTS = 5
#: Backoff before re-reading a body that broke off: base × 2^(attempt-1), capped, with full jitter.
S3_STREAM_BACKOFF_BASE_S = 0.2
S3_STREAM_BACKOFF_CAP_S = 5.0

_s3_clients: dict[tuple[str | None, int], Any] = {}
_s3_clients_lock = threading.Lock()


def s3_endpoint_url() -> str | None:
    """S3 endpoint override (MinIO, moto, …): ``FACEGEN_S3_ENDPOINT_URL``, else ``AWS_ENDPOINT_URL``, else AWS."""
    return os.environ.get("FACEGEN_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_max_attempts() -> int:
    """Attempts per S3 request: ``FACEGEN_S3_MAX_ATTEMPTS`` when set (>= 1), else :data:`S3_MAX_ATTEMPTS`."""
    raw = os.environ.get("FACEGEN_S3_MAX_ATTEMPTS", "").strip()
    if not raw:
        return S3_MAX_ATTEMPTS
    try:
        attempts = int(raw)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise ValueError(f"FACEGEN_S3_MAX_ATTEMPTS must be a positive integer, got {raw!r}")
    return attempts


def s3_client_config(max_attempts: int | None = None) -> Any:
    """botocore ``Config`` for facegen's S3 clients: adaptive retries, ``max_attempts`` attempts per request in all."""
    from botocore.config import Config

    attempts = s3_max_attempts() if max_attempts is None else max_attempts
    return Config(retries={"total_max_attempts": attempts, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)


def default_s3_client() -> Any:
    """A shared boto3 S3 client (clients are thread-safe) configured by :func:`s3_client_config`."""
    import boto3

    endpoint, attempts = s3_endpoint_url(), s3_max_attempts()
    with _s3_clients_lock:
        if (endpoint, attempts) not in _s3_clients:
            _s3_clients[endpoint, attempts] = boto3.client(
                "s3", endpoint_url=endpoint, config=s3_client_config(attempts)
            )
        return _s3_clients[endpoint, attempts]


def _split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"malformed S3 URI {uri!r}: expected 's3://bucket/prefix'")
    return parsed.netloc, parsed.path.lstrip("/")


def _client_attempts(client: Any) -> int:
    """The client's configured attempts per request, the first included (botocore's ``total_max_attempts``)."""
    retries = getattr(getattr(client, "meta", None), "config", None)
    retries = getattr(retries, "retries", None) or {}
    return int(retries.get("total_max_attempts") or retries.get("max_attempts") or S3_MAX_ATTEMPTS)


def _read_s3_entry(entry_uri: str, client: Any) -> bytes:
    """The object's bytes, streamed from one GET; a body that breaks off is re-requested with backoff.

    Errors that outlast the retries become an ``OSError`` naming ``entry_uri`` (a missing key: FileNotFoundError).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3_uri(entry_uri)
    attempts = _client_attempts(client)
    for attempt in range(1, attempts + 1):
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        except client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no S3 object {entry_uri!r}") from None
        except (ClientError, BotoCoreError) as error:  # botocore has already retried what is retryable
            raise OSError(f"could not read S3 object {entry_uri!r}: {error}") from error
        try:
            with contextlib.closing(body):
                return body.read()
        except (BotoCoreError, OSError) as error:  # connection reset / timeout / short body while streaming
            if attempt == attempts:
                raise OSError(
                    f"could not read S3 object {entry_uri!r}: the body broke off {attempts} times, last: {error}"
                ) from error
            time.sleep(random.uniform(0, min(S3_STREAM_BACKOFF_CAP_S, S3_STREAM_BACKOFF_BASE_S * 2 ** (attempt - 1))))
    raise AssertionError("unreachable")  # pragma: no cover


class S3Source(ImageSource):
    """Images under an S3 prefix; the prefix is treated as a folder (``s3://b/faces`` lists ``faces/…`` only)."""

    def __init__(self, uri: str, client: Any | None = None) -> None:
        bucket, prefix = _split_s3_uri(uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket, self.prefix = bucket, prefix
        self._client = client
        super().__init__(f"s3://{bucket}/{prefix}")

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else default_s3_client()

    def list_entries(self) -> list[str]:
        self.refused = []
        client = self.client
        entries: list[str] = []
        from botocore.exceptions import BotoCoreError, ClientError

        try:  # one ListObjectsV2 request per page of up to 1,000 keys, each retried by botocore on its own
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                entries.extend(
                    f"s3://{self.bucket}/{obj['Key']}" for obj in page.get("Contents", []) if is_image_name(obj["Key"])
                )
        except client.exceptions.NoSuchBucket:
            raise FileNotFoundError(f"S3 bucket of source {self.uri!r} does not exist") from None
        except (ClientError, BotoCoreError) as error:
            raise OSError(f"could not list S3 source {self.uri!r}: {error}") from error
        return sorted(entries)

    def read_bytes(self, entry_uri: str) -> bytes:
        bucket, key = _split_s3_uri(entry_uri)
        if bucket != self.bucket or not key.startswith(self.prefix):
            raise ValueError(f"entry {entry_uri!r} is not inside source {self.uri!r}")
        return _read_s3_entry(entry_uri, self.client)


# ---------------------------------------------------------------------------------------------- entry points


def open_source(uri: str, *, s3_client: Any | None = None) -> ImageSource:
    """Open a folder path, a ``.zip`` path or an ``s3://bucket/prefix`` as an :class:`ImageSource`.

    Relative paths resolve against the working directory. Raises FileNotFoundError for a missing path and
    ValueError for an unknown scheme or a file that is not a zip archive.
    """
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else None
    if scheme == "s3":
        return S3Source(uri, client=s3_client)
    if scheme not in (None, "file"):
        raise ValueError(f"unsupported source {uri!r}: use a folder, a .zip file or s3://bucket/prefix")
    path = Path(_local_path(uri)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"source {uri!r} does not exist (resolved to {path.resolve()})")
    if path.is_dir():
        return FolderSource(path)
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    raise ValueError(f"source {uri!r} is neither a folder nor a zip archive")


def read_entry(entry_uri: str) -> bytes:
    """Read any entry URI produced by an :class:`ImageSource` (S3 through :func:`default_s3_client`)."""
    if entry_uri.startswith(_ZIP_PREFIX):
        return _read_zip_entry(entry_uri)
    if entry_uri.startswith("s3://"):
        return _read_s3_entry(entry_uri, default_s3_client())
    match = _SCHEME.match(entry_uri)
    if match and match.group(1).lower() != "file":
        raise ValueError(f"unsupported entry URI {entry_uri!r}")
    return Path(_local_path(entry_uri)).read_bytes()
