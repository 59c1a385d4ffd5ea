"""Where backups live: a local directory, an S3-compatible bucket or a GCS bucket.

:func:`open_repository` turns the operator's ``REPO`` / ``--repo`` / ``MMOPS_REPO`` into one
:class:`~ops.repository.base.Repository`; everything above talks only to that protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ops.errors import RepositoryError, UsageError

from .base import (
    BackupName,
    Entry,
    ReadAt,
    Repository,
    Sink,
    backups,
    iter_read,
    parse_backup_name,
)

_BUCKET_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-._")
SCHEMES = ("s3", "gs")
_FORM = "use one directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"


def split_bucket_url(spec: str) -> tuple[str, str, str]:
    """``s3://bucket/some/prefix`` → (``s3``, ``bucket``, ``some/prefix``); UsageError for
    anything that does not parse cleanly into exactly that (a URL library parses it; the
    checks below refuse what it would otherwise read as a strange but valid key prefix)."""
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in spec or "#" in spec:
        raise UsageError(
            f"The repository URL for {scheme}://{parts.hostname or ''} must be "
            f"{scheme}://BUCKET/PREFIX only (no user, query or fragment); credentials come "
            "from the environment."
        )
    bucket = parts.netloc
    if not bucket:
        raise UsageError(f"The repository URL {spec!r} names no bucket; {_FORM}.")
    if not set(bucket) <= _BUCKET_CHARS:
        raise UsageError(f"{spec!r} names no valid bucket; use {scheme}://BUCKET/PREFIX.")
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if any(s in ("", ".", "..") for s in segments):
        raise UsageError(
            f"The repository URL {spec!r} has an empty, '.' or '..' path segment; a prefix "
            "is a plain path such as s3://BUCKET/team/backups."
        )
    return scheme, bucket, prefix


def check_repository_spec(spec: str) -> str:
    """``s3``, ``gs`` or ``dir`` for a valid ``spec``; UsageError otherwise. No network, no
    credentials: the CLI calls it before a backup starts, the factory before it opens.

    One value names one repository: whitespace is refused rather than read as part of a
    directory or key prefix (``REPO="s3://a/x gs://b/y"`` is two URLs, not one prefix)."""
    if not spec or spec != spec.strip() or any(c.isspace() for c in spec):
        raise UsageError(
            f"The repository {spec!r} contains whitespace; one REPO names one repository "
            f"({_FORM}, without spaces)."
        )
    scheme = urlsplit(spec).scheme.lower()
    if "://" in spec or scheme in SCHEMES:
        if "://" not in spec:
            raise UsageError(f"The repository URL {spec!r} is malformed; {_FORM}.")
        if scheme not in SCHEMES:
            raise UsageError(f"Unknown repository type {spec.split('://', 1)[0]}://; {_FORM}.")
        split_bucket_url(spec)
        return scheme
    return "dir"


def open_repository(
    spec: str, *, environ: Mapping[str, str] | None = None, **options: Any
) -> Repository:
    """The repository named by ``spec``: ``s3://bucket/prefix``, ``gs://bucket/prefix`` or a path.

    ``environ`` is where storage credentials are read (default ``os.environ``); ``options`` go
    to the store's constructor (``lock_days``, ``part_size``, ``concurrency`` for S3,
    ``chunk_size`` for GCS). No network call happens here; call ``check()`` to fail early.
    """
    kind = check_repository_spec(spec)
    if kind == "s3":
        from .s3 import S3Repository

        _, bucket, prefix = split_bucket_url(spec)
        return S3Repository(bucket, prefix, environ=environ, **options)
    if kind == "gs":
        from .gcs import GCSRepository

        _, bucket, prefix = split_bucket_url(spec)
        return GCSRepository(bucket, prefix, environ=environ, **options)
    from .local import LocalRepository  # the lead's module

    return LocalRepository(Path(spec).expanduser(), **options)  # type: ignore[no-any-return,unused-ignore]


__all__ = [
    "check_repository_spec",
    "BackupName",
    "Entry",
    "ReadAt",
    "Repository",
    "RepositoryError",
    "Sink",
    "backups",
    "iter_read",
    "open_repository",
    "parse_backup_name",
    "split_bucket_url",
]
