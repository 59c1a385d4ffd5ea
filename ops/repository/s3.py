"""``s3://bucket/prefix``: AWS S3 and every S3-compatible store, through boto3.

Why boto3: it is AWS's own SDK and what every S3-compatible provider tests against; it reads
credentials the ecosystem's way (keys, session token, ``AWS_PROFILE``, instance roles), retries
throttling, 5xx and connection resets with exponential backoff (``standard`` mode), and it
speaks Object Lock (retention on upload, reading it back). obstore (Rust ``object_store``) was
the first choice and was tried: it streams well, but it has no Object Lock calls, no profiles
without boto3 anyway, and its multipart writer holds each whole part in RAM.

Credentials and endpoint come from the environment only (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``). They are handed to boto3 and kept nowhere
else: no attribute, ``repr`` or message of this module holds one.

Uploads (:class:`S3Sink`) are multipart with equal parts (:mod:`ops.repository.parts`), up to
``concurrency`` parts in flight, each with ``Content-MD5``. The upload completes with
``If-None-Match: *`` so an existing object is never replaced; any failure aborts the multipart
upload, so no parts are left behind and nothing appears under the final name. SDK default
request checksums (CRC32 trailers since botocore 1.36) are switched to "when required": several
S3-compatible stores reject them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bexc
from botocore.config import Config

from ops.errors import RepositoryError

from .base import Entry, ObjectMissing
from .documents import parse_lock_holder
from .parts import (
    HARD_MAX_PARTS,
    PROTOCOL_MIN_PART_SIZE,
    PartBuffer,
    choose_part_size,
)

log = logging.getLogger(__name__)

# Errors raised while a response body is being read: botocore's retries do not cover these.
_STREAM_ERRORS = (
    bexc.IncompleteReadError,
    bexc.ReadTimeoutError,
    bexc.ResponseStreamingError,
    bexc.ConnectionClosedError,
    bexc.EndpointConnectionError,
)
_READ_ATTEMPTS = 4
_LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")


def _endpoint_for_display(endpoint: str | None) -> str:
    """The endpoint without any user:password part."""
    if not endpoint:
        return "AWS S3"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}" if parts.scheme else host


class S3Repository:
    """A repository in an S3 bucket under a key prefix.

    ``part_size`` overrides the computed equal part size (at least 5 MiB, S3's floor; tests use
    small parts); ``concurrency`` is the number of parts uploaded at once; ``lock_days`` sets
    Object Lock retention (``lock_mode``, COMPLIANCE by default) on every object created,
    unless :meth:`create` is given its own ``lock_days``.
    """

    scheme = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        environ: Mapping[str, str] | None = None,
        part_size: int | None = None,
        concurrency: int = 4,
        lock_days: int | None = None,
        lock_mode: str = "COMPLIANCE",
        max_attempts: int = 6,
    ) -> None:
        env = os.environ if environ is None else environ
        if part_size is not None and part_size < PROTOCOL_MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {PROTOCOL_MIN_PART_SIZE} bytes")
        if lock_mode not in _LOCK_MODES:
            raise ValueError(f"lock_mode must be one of {_LOCK_MODES}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.lock_days = lock_days
        self.lock_mode = lock_mode
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        self.endpoint = _endpoint_for_display(endpoint)
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        profile = env.get("AWS_PROFILE") or None
        try:
            session = boto3.session.Session(
                aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
                region_name=region or ("us-east-1" if endpoint else None),
                profile_name=profile,
            )
            config = Config(
                retries={"mode": "standard", "max_attempts": max_attempts},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path" if endpoint else "auto"},
                max_pool_connections=max(10, self.concurrency + 2),
                connect_timeout=10,
                read_timeout=120,
            )
            self._client = session.client("s3", endpoint_url=endpoint, config=config)
        except bexc.ProfileNotFound as exc:
            raise RepositoryError(
                f"The AWS profile named in AWS_PROFILE for {self.url} does not exist: {exc}."
            ) from exc
        except (bexc.BotoCoreError, ValueError) as exc:
            raise RepositoryError(
                f"Cannot set up the S3 client for {self.url}: {type(exc).__name__}."
            ) from exc

    def __repr__(self) -> str:
        return f"S3Repository({self.url!r}, endpoint={self.endpoint!r})"

    __str__ = __repr__

    # -- names ---------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        name = name.lstrip("/")
        return f"{self.prefix}/{name}" if self.prefix else name

    def _name(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def object_url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    # -- protocol ------------------------------------------------------------------------------

    def check(self) -> None:
        """Fail early, with one sentence, when the bucket cannot be reached or used."""
        with self._errors("reach"):
            self._client.head_bucket(Bucket=self.bucket)

    def list(self, prefix: str = "") -> list[Entry]:
        """The objects directly under the repository's prefix whose names start with
        ``prefix``. One prefix is one repository: keys below it (``mm/old/x.mmops``, another
        repository) and beside it (``mm-old/…``) are never listed."""
        full = self.key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        entries: list[Entry] = []
        with self._errors("list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if str(item["Key"]).endswith("/"):
                        continue  # a directory marker (SeaweedFS lists the prefix's own)
                    entries.append(
                        Entry(
                            name=self._name(item["Key"]),
                            size=int(item["Size"]),
                            modified=item.get("LastModified"),
                        )
                    )
        return entries

    def open(self, name: str) -> S3Object:
        with self._errors("open", name):
            head = self._client.head_object(Bucket=self.bucket, Key=self.key(name))
        return S3Object(self, name, int(head["ContentLength"]), head.get("ETag"))

    def exists(self, name: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key(name))
        except bexc.ClientError as exc:
            if _status(exc) == 404:
                return False
            raise self._translate(exc, "open", name) from exc
        except bexc.BotoCoreError as exc:
            raise self._translate(exc, "open", name) from exc
        return True

    def create(
        self, name: str, *, size_hint: int | None = None, lock_days: int | None = None
    ) -> S3Sink:
        """Start writing ``name``. ``size_hint``: an upper bound of its size, to pick parts."""
        if self.exists(name):
            raise RepositoryError(
                f"{self.object_url(name)} already exists; refusing to overwrite it."
            )
        days = self.lock_days if lock_days is None else lock_days
        part_size = self.part_size or choose_part_size(size_hint)
        return S3Sink(self, name, part_size=part_size, lock_days=days or None)

    def retention(self, name: str) -> tuple[str, dt.datetime] | None:
        """The object's Object Lock (mode, retain-until) if one is still in force."""
        with self._errors("read the retention of", name):
            head = self._client.head_object(Bucket=self.bucket, Key=self.key(name))
        until = head.get("ObjectLockRetainUntilDate")
        if until is None or until <= dt.datetime.now(dt.timezone.utc):
            return None
        return str(head.get("ObjectLockMode") or "COMPLIANCE"), until

    def delete(self, name: str) -> None:
        """Remove ``name`` for good (its current version too, on versioned buckets).

        An object under Object Lock retention is refused with the date it may go.
        """
        key = self.key(name)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except bexc.ClientError as exc:
            if _status(exc) == 404:
                return
            raise self._translate(exc, "delete", name) from exc
        except bexc.BotoCoreError as exc:
            raise self._translate(exc, "delete", name) from exc
        until = head.get("ObjectLockRetainUntilDate")
        if until is not None and until > dt.datetime.now(dt.timezone.utc):
            raise self._locked(name, until)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        version = head.get("VersionId")
        if version and version != "null":
            kwargs["VersionId"] = version  # a plain delete would only hide it behind a marker
        try:
            self._client.delete_object(**kwargs)
        except bexc.ClientError as exc:
            if _code(exc) == "AccessDenied" and until is not None:
                raise self._locked(name, until) from exc
            raise self._translate(exc, "delete", name) from exc
        except bexc.BotoCoreError as exc:
            raise self._translate(exc, "delete", name) from exc

    @contextlib.contextmanager
    def lock(self, name: str = "lock") -> Iterator[None]:
        """An exclusive lock: an object created only if absent, removed when the block ends."""
        key = self.key(name)
        body = json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()
        try:
            put = self._client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except bexc.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise RepositoryError(
                    f"{self.url} is locked by another mmops ({self._holder(key)}).",
                    hint=f"If none is running, delete {self.object_url(name)} and try again.",
                ) from exc
            raise self._translate(exc, "lock", name) from exc
        except bexc.BotoCoreError as exc:
            raise self._translate(exc, "lock", name) from exc
        try:
            yield
        finally:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if put.get("VersionId") and put["VersionId"] != "null":
                kwargs["VersionId"] = put["VersionId"]
            with self._errors("unlock", name):
                self._client.delete_object(**kwargs)

    def _holder(self, key: str) -> str:
        try:
            data = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read(4096)
        except (bexc.BotoCoreError, bexc.ClientError):
            return "holder unknown"
        info = parse_lock_holder(data)
        if info is None:
            return "holder unknown"
        return f"host {info.host}, pid {info.pid}, since {info.created_at}"

    # -- errors --------------------------------------------------------------------------------

    def _locked(self, name: str, until: dt.datetime) -> RepositoryError:
        stamp = until.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return RepositoryError(
            f"{self.object_url(name)} is under Object Lock retention until {stamp} "
            "and cannot be deleted before then."
        )

    @contextlib.contextmanager
    def _errors(self, action: str, name: str | None = None) -> Iterator[None]:
        try:
            yield
        except (bexc.ClientError, bexc.BotoCoreError) as exc:
            raise self._translate(exc, action, name) from exc

    def _translate(
        self, exc: BaseException, action: str, name: str | None = None
    ) -> RepositoryError:
        """One sentence for a boto error. Never includes the server's text for auth errors."""
        what = self.object_url(name) if name else self.url
        if isinstance(exc, bexc.ClientError):
            code = _code(exc)
            status = _status(exc)
            if code in ("NoSuchBucket",):
                return RepositoryError(
                    f"The S3 bucket {self.bucket!r} does not exist at {self.endpoint}.",
                    hint="Create it or fix the repository URL.",
                )
            if code in ("NoSuchKey", "NotFound") or status == 404:
                if action == "reach" or name is None:
                    return RepositoryError(
                        f"The S3 bucket {self.bucket!r} does not exist at {self.endpoint}.",
                        hint="Create it or fix the repository URL.",
                    )
                return ObjectMissing(f"{what} does not exist.")
            if code == "SignatureDoesNotMatch":
                return RepositoryError(
                    f"{self.endpoint} refused the secret key for {self.url} "
                    "(signature mismatch); check AWS_SECRET_ACCESS_KEY."
                )
            if code in ("InvalidAccessKeyId", "InvalidClientTokenId"):
                return RepositoryError(
                    f"{self.endpoint} does not know the access key used for {self.url}; "
                    "check AWS_ACCESS_KEY_ID."
                )
            if code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
                return RepositoryError(
                    f"The session token for {self.url} was refused or has expired; "
                    "check AWS_SESSION_TOKEN."
                )
            if code == "AccessDenied" or status == 403:
                return RepositoryError(
                    f"Access denied: could not {action} {what}; check the storage "
                    "credentials and their permissions on the bucket."
                )
            if code == "PreconditionFailed" or status == 412:
                return RepositoryError(f"{what} already exists; refusing to overwrite it.")
            return RepositoryError(
                f"Could not {action} {what}: the store answered {code or 'an error'} "
                f"(HTTP {status})."
            )
        if isinstance(exc, bexc.NoCredentialsError):
            return RepositoryError(
                f"No storage credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment."
            )
        if isinstance(exc, bexc.PartialCredentialsError):
            return RepositoryError(
                f"Incomplete storage credentials for {self.url}: both AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY are needed."
            )
        if isinstance(exc, (bexc.EndpointConnectionError, bexc.ConnectTimeoutError)):
            return RepositoryError(
                f"Cannot reach the S3 endpoint {self.endpoint} to {action} {what}; "
                "check AWS_ENDPOINT_URL and the network."
            )
        if isinstance(exc, bexc.BotoCoreError):
            return RepositoryError(
                f"Could not {action} {what}: {type(exc).__name__} talking to {self.endpoint}."
            )
        return RepositoryError(f"Could not {action} {what}: {type(exc).__name__}.")


def _code(exc: bexc.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: bexc.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3Object:
    """A stored object opened for ranged reads (``ReadAt``), pinned to the ETag seen at open."""

    def __init__(self, repo: S3Repository, name: str, size: int, etag: str | None) -> None:
        self._repo = repo
        self.name = name
        self._size = size
        self._etag = etag

    @property
    def size(self) -> int:
        return self._size

    @property
    def url(self) -> str:
        """The object's full URL, for messages."""
        return self._repo.object_url(self.name)

    def read_at(self, offset: int, size: int) -> bytes:
        if size <= 0 or offset >= self._size or offset < 0:
            return b""
        end = min(offset + size, self._size) - 1
        kwargs: dict[str, Any] = {
            "Bucket": self._repo.bucket,
            "Key": self._repo.key(self.name),
            "Range": f"bytes={offset}-{end}",
        }
        if self._etag:
            kwargs["IfMatch"] = self._etag
        for attempt in range(_READ_ATTEMPTS):
            try:
                response = self._repo._client.get_object(**kwargs)
                return bytes(response["Body"].read())
            except bexc.ClientError as exc:
                if _code(exc) == "PreconditionFailed" or _status(exc) == 412:
                    raise RepositoryError(
                        f"{self._repo.object_url(self.name)} changed while it was being read."
                    ) from exc
                raise self._repo._translate(exc, "read", self.name) from exc
            except _STREAM_ERRORS as exc:
                if attempt + 1 == _READ_ATTEMPTS:
                    raise self._repo._translate(exc, "read", self.name) from exc
                time.sleep(min(8.0, 0.5 * 2**attempt))
            except bexc.BotoCoreError as exc:
                raise self._repo._translate(exc, "read", self.name) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Nothing to release: every read is its own request."""


class S3Sink:
    """A new object streamed as an equal-part multipart upload (``Sink``).

    Small objects (one part or less) are sent with one ``PutObject`` at commit. Parts are
    uploaded by a small thread pool while the next part fills; at most ``concurrency`` are in
    flight, so memory is bounded by ``(concurrency + 1) × min(part size, 16 MiB)``.
    """

    def __init__(
        self, repo: S3Repository, name: str, *, part_size: int, lock_days: int | None
    ) -> None:
        self._repo = repo
        self.name = name
        self.part_size = part_size
        self._client = repo._client
        self._bucket = repo.bucket
        self._key = repo.key(name)
        self._lock_args: dict[str, Any] = {}
        if lock_days:
            until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=lock_days)
            self._lock_args = {
                "ObjectLockMode": repo.lock_mode,
                "ObjectLockRetainUntilDate": until,
            }
        self._current = PartBuffer(1)
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[dict[str, Any]]] = set()
        self._done: list[dict[str, Any]] = []
        self._state = "open"
        self._state_lock = threading.Lock()
        self.bytes_written = 0

    @property
    def upload_id(self) -> str | None:
        """The multipart upload's id once one was started (for tests and diagnostics)."""
        return self._upload_id

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != "open":
            raise RepositoryError(
                f"The upload of {self._repo.object_url(self.name)} is already {self._state}."
            )
        view = memoryview(data).cast("B")
        try:
            while len(view):
                room = self.part_size - self._current.size
                piece = view[:room]
                self._current.write(piece)
                view = view[len(piece) :]
                self.bytes_written += len(piece)
                if self._current.size >= self.part_size:
                    self._ship(self._current)
                    self._current = PartBuffer(self._current.number + 1)
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        if self._state != "open":
            raise RepositoryError(
                f"The upload of {self._repo.object_url(self.name)} is already {self._state}."
            )
        try:
            if self._upload_id is None:
                self._put_single()
            else:
                if self._current.size:
                    self._ship(self._current)
                else:
                    self._current.close()
                self._drain(0)
                self._complete()
            self._state = "committed"
        except BaseException:
            self.abort()
            raise
        finally:
            self._shutdown_pool()

    def abort(self) -> None:
        """Throw everything away: cancel queued parts, abort the multipart upload. Idempotent."""
        with self._state_lock:
            if self._state in ("committed", "aborted"):
                return
            self._state = "aborted"
        for future in self._pending:
            future.cancel()
        wait(self._pending)
        self._pending.clear()
        self._shutdown_pool()
        self._current.close()
        if self._upload_id is not None:
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            except (bexc.ClientError, bexc.BotoCoreError) as exc:
                if not (isinstance(exc, bexc.ClientError) and _code(exc) == "NoSuchUpload"):
                    log.warning(
                        "could not abort the multipart upload of %s (%s); its parts may "
                        "remain until the bucket's lifecycle rule removes them",
                        self._repo.object_url(self.name),
                        type(exc).__name__,
                    )

    # -- internals -----------------------------------------------------------------------------

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return self._repo._errors(action, self.name)

    def _put_single(self) -> None:
        part = self._current
        try:
            with self._errors("upload"):
                self._put_object(part, if_none_match=True)
        except RepositoryError as exc:
            if not _unsupported(exc):
                raise
            with self._errors("upload"):  # a store without conditional writes
                self._put_object(part, if_none_match=False)
        finally:
            part.close()

    def _put_object(self, part: PartBuffer, *, if_none_match: bool) -> None:
        extra: dict[str, Any] = dict(self._lock_args)
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        self._client.put_object(
            Bucket=self._bucket,
            Key=self._key,
            Body=part.body(),
            ContentLength=part.size,
            ContentMD5=part.content_md5(),
            **extra,
        )

    def _ship(self, part: PartBuffer) -> None:
        if part.number > HARD_MAX_PARTS:
            part.close()
            raise RepositoryError(
                f"{self._repo.object_url(self.name)} outgrew {HARD_MAX_PARTS} parts of "
                f"{self.part_size} bytes; pass a larger size hint."
            )
        if self._upload_id is None:
            with self._errors("start the upload of"):
                created = self._client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._key, **self._lock_args
                )
            self._upload_id = str(created["UploadId"])
            self._pool = ThreadPoolExecutor(
                max_workers=self._repo.concurrency, thread_name_prefix="mmops-s3-part"
            )
        self._drain(self._repo.concurrency - 1)
        assert self._pool is not None
        self._pending.add(self._pool.submit(self._upload_part, part))

    def _upload_part(self, part: PartBuffer) -> dict[str, Any]:
        try:
            with self._errors(f"upload part {part.number} of"):
                response = self._client.upload_part(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    PartNumber=part.number,
                    Body=part.body(),
                    ContentLength=part.size,
                    ContentMD5=part.content_md5(),
                )
            return {"PartNumber": part.number, "ETag": response["ETag"]}
        finally:
            part.close()

    def _drain(self, keep: int) -> None:
        """Wait until at most ``keep`` parts are in flight; raise the first failure."""
        while len(self._pending) > keep:
            finished, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in finished:
                self._pending.discard(future)
                self._done.append(future.result())

    def _complete(self) -> None:
        parts = sorted(self._done, key=lambda p: p["PartNumber"])
        args: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self._key,
            "UploadId": self._upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        try:
            with self._errors("finish the upload of"):
                self._client.complete_multipart_upload(IfNoneMatch="*", **args)
        except RepositoryError as exc:
            if not _unsupported(exc):
                raise
            with self._errors("finish the upload of"):
                self._client.complete_multipart_upload(**args)

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _unsupported(exc: RepositoryError) -> bool:
    """The store rejected ``If-None-Match`` itself (older S3-compatible servers)."""
    cause = exc.__cause__
    return isinstance(cause, bexc.ClientError) and _code(cause) in (
        "NotImplemented",
        "InvalidArgument",
    ) and _status(cause) in (400, 501)
