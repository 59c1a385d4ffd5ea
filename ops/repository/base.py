"""Where backups live: one small protocol for every store (local dir, S3-compatible, GCS).

Modelled on restic's ``internal/backend`` interface and borg's repository: a store only knows
names and bytes. It lists entries with their metadata, reads a byte range of one, creates one
atomically (a name appears only when the whole object is there), deletes one, and holds a lock.
What a backup *means* (which database, when it was taken) comes from its name, parsed here once,
so "newest" means the same thing everywhere: the backup's own UTC timestamp, never an mtime.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import RepositoryError

# <database>-<YYYYmmddTHHMMSSZ>.mmops[.age]; safety backups carry a "safety-" prefix. The
# database part may itself contain dashes, so the timestamp is matched from the right.
_NAME_RE = re.compile(
    r"^(?P<prefix>safety-)?(?P<database>.+)-(?P<stamp>\d{8}T\d{6}(?:\d{6})?Z)"
    r"(?P<suffix>\.mmops(?:\.age)?)$"
)
BACKUP_SUFFIXES = (".mmops", ".mmops.age")


class NameInUse(RepositoryError):
    """A backup name that exists or that another run is writing right now."""


class ObjectMissing(RepositoryError):
    """``open`` of a name the store does not hold (as opposed to a store that failed)."""


@dataclass(frozen=True)
class BackupName:
    """What a backup's file or object name says about it."""

    database: str
    created_at: dt.datetime  # UTC, from the name
    safety: bool
    encrypted: bool


def parse_backup_name(name: str) -> BackupName | None:
    """``markdown-20261124T101500Z.mmops`` → its database and UTC timestamp; None if not ours
    (also a nested name, ``old/markdown-….mmops``: that belongs to another repository)."""
    if "/" in name:
        return None
    m = _NAME_RE.match(name)
    if m is None:
        return None
    stamp = m.group("stamp")
    fmt = "%Y%m%dT%H%M%S%fZ" if len(stamp) > 16 else "%Y%m%dT%H%M%SZ"
    try:
        created = dt.datetime.strptime(stamp, fmt).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return BackupName(
        database=m.group("database"),
        created_at=created,
        safety=m.group("prefix") is not None,
        encrypted=m.group("suffix").endswith(".age"),
    )


@dataclass(frozen=True)
class Entry:
    """One object in a repository. ``name`` is relative to the repository's root/prefix."""

    name: str
    size: int
    modified: dt.datetime | None = None  # the store's own time; never used to order backups

    @property
    def backup(self) -> BackupName | None:
        return parse_backup_name(self.name)


class ReadAt(Protocol):
    """Random access to one stored object (the archive reader's source)."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end)."""

    def close(self) -> None: ...


class Sink(Protocol):
    """A new object being written sequentially; it gets its name only on ``commit``."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> None:
        """Make the object visible under its final name (all or nothing)."""

    def abort(self) -> None:
        """Throw the partial object away (no orphan parts, no partial name)."""


@runtime_checkable
class Repository(Protocol):
    """Where backups live. ``url`` is for display and never holds a secret."""

    url: str

    def list(self, prefix: str = "") -> list[Entry]:
        """Every object under ``prefix`` (relative names), in no particular order."""

    def open(self, name: str) -> ReadAt:
        """Open ``name`` for reading by offset; RepositoryError when missing."""

    def create(self, name: str, *, size_hint: int | None = None) -> Sink:
        """Start writing ``name``; refuses to overwrite an existing object. ``size_hint``: an
        upper bound of its size, for stores that choose part sizes from it."""

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing object is not an error."""

    def lock(self, name: str = "lock") -> AbstractContextManager[None]:
        """Hold an exclusive lock (one writer/pruner at a time) for the ``with`` block."""


def backups(repo: Repository, *, database: str | None = None, safety: bool | None = None,
            entries: list[Entry] | None = None) -> list[tuple[Entry, BackupName]]:
    """The repository's objects *named* as backups (optionally of one database), oldest first
    by their own time; ``entries``: a listing already made. What counts as a backup is
    ``verified.list_backups``'s to say."""
    found: list[tuple[Entry, BackupName]] = []
    for entry in repo.list() if entries is None else entries:
        info = entry.backup
        if info is None:
            continue
        if database is not None and info.database != database:
            continue
        if safety is not None and info.safety != safety:
            continue
        found.append((entry, info))
    found.sort(key=lambda pair: (pair[1].created_at, pair[0].name))
    return found


def iter_read(source: ReadAt, block: int = 1 << 20) -> Iterator[bytes]:
    """Stream a whole object in ``block``-sized pieces (flat memory)."""
    offset = 0
    while offset < source.size:
        data = source.read_at(offset, min(block, source.size - offset))
        if not data:
            break
        offset += len(data)
        yield data


def copy_to_file(source: ReadAt, dest: Path, block: int = 8 << 20) -> Path:
    """Stream ``source`` into a new 0600 file ``dest`` (never overwriting one) and close the
    source; flat memory. The caller verifies what arrived."""
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for data in iter_read(source, block):
                out.write(data)
    finally:
        source.close()
    return dest
