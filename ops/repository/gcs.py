"""``gs://bucket/prefix``: Google Cloud Storage through google-cloud-storage.

Why that library: it is Google's own client; it does resumable uploads (the object exists only
once the last chunk is in), ranged downloads, generation preconditions and retries with
backoff. Credentials: ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account or other
credentials file), else Application Default Credentials; ``STORAGE_EMULATOR_HOST`` points at
an emulator (tests) and then no credentials are used.

Uploads stream in ``chunk_size`` pieces (a multiple of 256 KiB; memory is one chunk) and are
created with ``ifGenerationMatch=0`` so an existing object is never replaced; a failed or
abandoned upload cancels its resumable session. Object Lock is S3's: on GCS use a bucket
retention policy, whose refusals :meth:`GCSRepository.delete` reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import google.auth
import google.auth.exceptions as gauth_exc
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.fileio import BlobWriter
from google.cloud.storage.retry import DEFAULT_RETRY

from ops.errors import RepositoryError

from .base import Entry, ObjectMissing

_CHUNK_MULTIPLE = 256 << 10
DEFAULT_CHUNK_SIZE = 8 << 20

try:  # the resumable-upload errors moved into google-cloud-storage 3.x
    from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
except ImportError:  # pragma: no cover - older google-cloud-storage
    from google.resumable_media import DataCorruption, InvalidResponse

_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout)


class GCSRepository:
    """A repository in a GCS bucket under a prefix."""

    scheme = "gs"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        environ: Mapping[str, str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        env = os.environ if environ is None else environ
        if chunk_size <= 0 or chunk_size % _CHUNK_MULTIPLE:
            raise ValueError("chunk_size must be a positive multiple of 256 KiB")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.url = f"gs://{bucket}/{self.prefix}" if self.prefix else f"gs://{bucket}"
        self.chunk_size = chunk_size
        emulator = env.get("STORAGE_EMULATOR_HOST") or None
        project = env.get("GOOGLE_CLOUD_PROJECT") or None
        try:
            if emulator:
                if "://" not in emulator:
                    emulator = f"http://{emulator}"
                self.endpoint = emulator
                self._client = storage.Client(
                    project=project or "mmops-emulator",
                    credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": emulator},
                )
            else:
                self.endpoint = "Google Cloud Storage"
                scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
                path = env.get("GOOGLE_APPLICATION_CREDENTIALS")
                if path:
                    credentials, found = google.auth.load_credentials_from_file(
                        path, scopes=scopes
                    )
                else:
                    credentials, found = google.auth.default(scopes=scopes)
                self._client = storage.Client(project=project or found, credentials=credentials)
        except gauth_exc.DefaultCredentialsError as exc:
            raise RepositoryError(
                f"No usable Google credentials for {self.url}: set "
                "GOOGLE_APPLICATION_CREDENTIALS to a credentials file "
                f"({type(exc).__name__})."
            ) from exc
        except (gauth_exc.GoogleAuthError, OSError, ValueError) as exc:
            raise RepositoryError(
                f"Cannot set up the GCS client for {self.url}: {type(exc).__name__}."
            ) from exc
        self._bucket = self._client.bucket(bucket)

    def __repr__(self) -> str:
        return f"GCSRepository({self.url!r}, endpoint={self.endpoint!r})"

    __str__ = __repr__

    # -- names ---------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        name = name.lstrip("/")
        return f"{self.prefix}/{name}" if self.prefix else name

    def _name(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def object_url(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{self.key(name)}"

    # -- protocol ------------------------------------------------------------------------------

    def check(self) -> None:
        """Fail early, with one sentence, when the bucket cannot be reached or used."""
        with self._errors("reach"):
            if not self._bucket.exists():
                raise RepositoryError(
                    f"The GCS bucket {self.bucket_name!r} does not exist at {self.endpoint}.",
                    hint="Create it or fix the repository URL.",
                )

    def list(self, prefix: str = "") -> list[Entry]:
        """The objects directly under the repository's prefix whose names start with
        ``prefix``; keys below it (another repository) or beside it are never listed."""
        full = self.key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        entries: list[Entry] = []
        with self._errors("list"):
            for blob in self._client.list_blobs(self.bucket_name, prefix=full, delimiter="/"):
                if blob.name.endswith("/"):
                    continue  # a directory marker, not an object of this repository
                entries.append(
                    Entry(name=self._name(blob.name), size=int(blob.size or 0),
                          modified=blob.updated)
                )
        return entries

    def open(self, name: str) -> GCSObject:
        with self._errors("open", name):
            blob = self._bucket.get_blob(self.key(name))
        if blob is None:
            raise ObjectMissing(f"{self.object_url(name)} does not exist.")
        return GCSObject(self, blob)

    def exists(self, name: str) -> bool:
        with self._errors("open", name):
            return bool(self._bucket.blob(self.key(name)).exists())

    def create(
        self, name: str, *, size_hint: int | None = None, lock_days: int | None = None
    ) -> GCSSink:
        """Start writing ``name`` (refused if it exists). ``size_hint`` is not needed here."""
        del size_hint  # resumable uploads have no part-count limit
        if lock_days:
            raise RepositoryError(
                f"Object Lock retention is an S3 feature; for {self.url} set a retention "
                "policy on the GCS bucket instead."
            )
        if self.exists(name):
            raise RepositoryError(
                f"{self.object_url(name)} already exists; refusing to overwrite it."
            )
        return GCSSink(self, name)

    def delete(self, name: str) -> None:
        blob = self._bucket.blob(self.key(name))
        try:
            blob.delete()
        except gexc.NotFound:
            return
        except gexc.Forbidden as exc:
            if "retention" in str(exc).lower() or "hold" in str(exc).lower():
                raise RepositoryError(
                    f"{self.object_url(name)} is under the bucket's retention policy or a "
                    "hold and cannot be deleted yet."
                ) from exc
            raise self._translate(exc, "delete", name) from exc
        except (gexc.GoogleAPIError, *_TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "delete", name) from exc

    @contextlib.contextmanager
    def lock(self, name: str = "lock") -> Iterator[None]:
        """An exclusive lock: an object created with ``ifGenerationMatch=0``, removed after."""
        blob = self._bucket.blob(self.key(name))
        body = json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        try:
            blob.upload_from_string(body, if_generation_match=0)
        except gexc.PreconditionFailed as exc:
            raise RepositoryError(
                f"{self.url} is locked by another mmops.",
                hint=f"If none is running, delete {self.object_url(name)} and try again.",
            ) from exc
        except (gexc.GoogleAPIError, *_TRANSPORT_ERRORS) as exc:
            raise self._translate(exc, "lock", name) from exc
        try:
            yield
        finally:
            with self._errors("unlock", name):
                blob.delete(if_generation_match=blob.generation)

    # -- errors --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str, name: str | None = None) -> Iterator[None]:
        try:
            yield
        except RepositoryError:
            raise
        except (
            gexc.GoogleAPIError,
            gauth_exc.GoogleAuthError,
            InvalidResponse,
            DataCorruption,
            *_TRANSPORT_ERRORS,
        ) as exc:
            raise self._translate(exc, action, name) from exc

    def _translate(self, exc: BaseException, action: str, name: str | None) -> RepositoryError:
        what = self.object_url(name) if name else self.url
        status = getattr(exc, "code", None)
        if isinstance(exc, InvalidResponse):
            status = getattr(exc.response, "status_code", None)
        if isinstance(exc, gexc.NotFound) or status == 404:
            if name is None or "bucket" in str(exc).lower():
                return RepositoryError(
                    f"The GCS bucket {self.bucket_name!r} does not exist at {self.endpoint}.",
                    hint="Create it or fix the repository URL.",
                )
            return ObjectMissing(f"{what} does not exist.")
        if isinstance(exc, gexc.PreconditionFailed) or status == 412:
            return RepositoryError(f"{what} already exists; refusing to overwrite it.")
        if isinstance(exc, gexc.Unauthorized) or status == 401:
            return RepositoryError(
                f"Google Cloud Storage refused the credentials for {self.url}; check "
                "GOOGLE_APPLICATION_CREDENTIALS."
            )
        if isinstance(exc, gexc.Forbidden) or status == 403:
            return RepositoryError(
                f"Access denied: could not {action} {what}; check the service account's "
                "permissions on the bucket."
            )
        if isinstance(exc, gauth_exc.GoogleAuthError):
            return RepositoryError(
                f"Could not authenticate to Google Cloud Storage for {self.url} "
                f"({type(exc).__name__}); check GOOGLE_APPLICATION_CREDENTIALS."
            )
        if isinstance(exc, _TRANSPORT_ERRORS):
            return RepositoryError(
                f"Cannot reach {self.endpoint} to {action} {what}; check the network."
            )
        if isinstance(exc, DataCorruption):
            return RepositoryError(
                f"The bytes stored for {what} failed their checksum during the transfer."
            )
        return RepositoryError(
            f"Could not {action} {what}: the store answered "
            f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}."
        )


class GCSObject:
    """A stored object opened for ranged reads (``ReadAt``), pinned to its generation."""

    def __init__(self, repo: GCSRepository, blob: Any) -> None:
        self._repo = repo
        self._blob = blob
        self.name = repo._name(blob.name)
        self._size = int(blob.size or 0)
        self._generation = blob.generation

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
        try:
            with self._repo._errors("read", self.name):
                return bytes(
                    self._blob.download_as_bytes(
                        start=offset,
                        end=end,
                        if_generation_match=self._generation,
                        checksum=None,  # a range has no stored checksum; ours is checked above
                        retry=DEFAULT_RETRY,
                    )
                )
        except RepositoryError as exc:
            if isinstance(exc.__cause__, gexc.PreconditionFailed):
                raise RepositoryError(
                    f"{self._repo.object_url(self.name)} changed while it was being read."
                ) from exc.__cause__
            raise

    def close(self) -> None:
        """Nothing to release: every read is its own request."""


class GCSSink:
    """A new object streamed as one resumable upload (``Sink``)."""

    def __init__(self, repo: GCSRepository, name: str) -> None:
        self._repo = repo
        self.name = name
        blob = repo._bucket.blob(repo.key(name), chunk_size=repo.chunk_size)
        self._writer = BlobWriter(
            blob,
            chunk_size=repo.chunk_size,
            ignore_flush=True,
            retry=DEFAULT_RETRY,
            if_generation_match=0,
            content_type="application/octet-stream",
        )
        self._state = "open"
        self.bytes_written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != "open":
            raise RepositoryError(
                f"The upload of {self._repo.object_url(self.name)} is already {self._state}."
            )
        try:
            with self._repo._errors("upload", self.name):
                self._writer.write(data)
        except BaseException:
            self.abort()
            raise
        self.bytes_written += len(data)

    def commit(self) -> None:
        if self._state != "open":
            raise RepositoryError(
                f"The upload of {self._repo.object_url(self.name)} is already {self._state}."
            )
        try:
            with self._repo._errors("finish the upload of", self.name):
                self._writer.close()
            self._state = "committed"
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Cancel the resumable session; the object never appears. Idempotent."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        with contextlib.suppress(Exception):
            self._writer.terminate()
