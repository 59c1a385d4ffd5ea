"""The small JSON objects a repository keeps next to its backups — each backup's clear-text
sidecar (``NAME.meta.json``) and the lock object — decoded against declared schemas.

Anyone who can write to a bucket can write these, so they are untrusted like a backup's
manifest: bounded in size and depth (:func:`ops.archive.schema.decode`), every known field
typed, unknown fields kept. A document that does not pass is reported as unreadable (None),
never half-read.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..archive.schema import Count, SchemaError, Text, Timestamp, decode

MAX_DOCUMENT = 64 << 10
"""The largest sidecar or lock object read (a real one is a few hundred bytes)."""


class Sidecar(msgspec.Struct, frozen=True):
    """What ``repo list`` and the web list show without the backup itself (no table names)."""

    database: Text | None = None
    created_at: Timestamp | None = None
    server_version: Text | None = None
    alembic_revision: Text | None = None
    kind: Text | None = None  # full | tables
    tables: Count | None = None
    rows: Count | None = None
    size: Count | None = None
    encrypted: bool | None = None
    stored_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")] | None = None


class LockHolder(msgspec.Struct, frozen=True):
    """Who holds a repository's lock, as the lock object says."""

    host: Text | None = None
    pid: Count | None = None
    created_at: Timestamp | None = None


def parse_sidecar(data: bytes) -> dict[str, Any] | None:
    """The sidecar as a plain dict once it passed its schema; None when it did not."""
    try:
        return decode(data, Sidecar, max_bytes=MAX_DOCUMENT)[1]
    except SchemaError:
        return None


def parse_lock_holder(data: bytes) -> LockHolder | None:
    try:
        return decode(data, LockHolder, max_bytes=MAX_DOCUMENT)[0]
    except SchemaError:
        return None
