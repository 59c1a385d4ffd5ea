"""What counts as a backup in a repository (invariant 9): a name is a claim, not a proof.

A file or object named ``<db>-<UTC>.mmops[.age]`` counts as a backup — for a prune, for
``latest``, for ``mmops check`` and for the listings — only when what describes it is readable,
consistent with its name and matches the object:

- its clear-text sidecar ``NAME.meta.json`` (written by the publish step) parses against
  :class:`Sidecar` (msgspec, at most ``MAX_SIDECAR_BYTES``), names the same database, a creation
  time within ``TIME_SLACK`` after the name's, the object's exact size and the same encryption;
- or, for a plain file in a local directory without a sidecar (``-o DIR``, safety backups),
  its manifest reads (the archive reader checks its structure) and names the same database and
  time.

Anything else (junk, a truncated or foreign file, an object whose sidecar is missing) is
returned as :class:`Unverified` with the reason: callers report it and never count, choose or
delete it. Each verdict is final for an object (names never repeat, objects are immutable), so
callers that list often (the web page) pass a ``known`` dict to read each sidecar once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import msgspec

from ops.errors import OpsError

from .base import BackupName, Entry, Repository, backups

META_SUFFIX = ".meta.json"
MAX_SIDECAR_BYTES = 64 << 10
# The name's time is taken just before the backup connects; the backup's own time once it
# holds its snapshot (after waiting for locks, bounded by --backup-lock-timeout).
TIME_SLACK = (dt.timedelta(seconds=-2), dt.timedelta(hours=1))
READERS = 8  # sidecars fetched at once from an object store (each is one small GET)
Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class Sidecar(msgspec.Struct):
    """``NAME.meta.json``: what a listing knows of a stored backup without reading it."""

    database: str
    created_at: str
    size: int
    encrypted: bool
    kind: str = "full"
    alembic_revision: str | None = None
    server_version: str | None = None
    tables: int | None = None
    rows: int | None = None
    # sha256 of the stored bytes (encrypted ones for .age); absent in sidecars written before
    # it was recorded, which stay valid (``repo check`` warns that it cannot prove them).
    stored_sha256: Sha256Hex | None = None


@dataclass(frozen=True)
class Verdict:
    """What was found about one stored backup: its facts, or why it is not one."""

    ok: bool
    kind: str = "?"  # full | tables | safety
    alembic_revision: str | None = None
    reason: str = ""
    stored_sha256: str | None = None  # from the sidecar, when it records one
    has_sidecar: bool = True  # False: a plain local file that verified by its manifest


@dataclass(frozen=True)
class StoredBackup:
    """A verified backup: its object, what its name says and what its sidecar/manifest says."""

    entry: Entry
    info: BackupName
    kind: str
    alembic_revision: str | None
    stored_sha256: str | None = None  # the sidecar's digest of the stored bytes, if any
    has_sidecar: bool = True

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass(frozen=True)
class Unverified:
    """A file named like a backup that does not count as one, and why."""

    entry: Entry
    info: BackupName
    reason: str

    @property
    def name(self) -> str:
        return self.entry.name

    def sentence(self) -> str:
        return f"{self.entry.name} is not a verified backup ({self.reason})"


@dataclass(frozen=True)
class Listing:
    backups: list[StoredBackup]  # oldest first, by each backup's own time
    unverified: list[Unverified]  # oldest first


def meta_name(backup_name: str) -> str:
    """The small clear-text object stored next to each backup for listing and retention."""
    return backup_name + META_SUFFIX


def read_sidecar(repo: Repository, backup_name: str) -> Sidecar:
    """The sidecar of ``backup_name``, parsed; ValueError (with the reason) otherwise."""
    source = repo.open(meta_name(backup_name))
    try:
        if source.size > MAX_SIDECAR_BYTES:
            raise ValueError(f"its sidecar is larger than {MAX_SIDECAR_BYTES} bytes")
        data = source.read_at(0, source.size)
    finally:
        source.close()
    try:
        return msgspec.json.decode(data, type=Sidecar)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"its sidecar is malformed: {exc}") from None
    except RecursionError:
        raise ValueError("its sidecar is nested too deeply") from None
    except UnicodeDecodeError:  # msgspec's, for bytes inside a string
        raise ValueError("its sidecar is not valid UTF-8") from None


def _parse_time(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _consistent(info: BackupName, database: object, created_at: object) -> str:
    """'' when a sidecar's/manifest's database and time agree with the name; else why not."""
    from ..engine.backup import safe_database_name

    if not isinstance(database, str) or safe_database_name(database) != info.database:
        return f"it holds database {database!r}, not {info.database!r}"
    when = _parse_time(created_at)
    if when is None:
        return "it has no valid creation time"
    lag = when - info.created_at
    if not TIME_SLACK[0] <= lag <= TIME_SLACK[1]:
        return f"it was taken at {created_at}, not at the time its name says"
    return ""


def judge(repo: Repository, entry: Entry, info: BackupName, has_sidecar: bool) -> Verdict:
    """Whether ``entry`` counts as a backup (see the module docstring). Never raises for what
    an object holds; a store that cannot be read raises its RepositoryError."""
    if has_sidecar:
        try:
            meta = read_sidecar(repo, entry.name)
        except ValueError as exc:
            return Verdict(False, reason=str(exc))
        problem = _consistent(info, meta.database, meta.created_at)
        if not problem and meta.size != entry.size:
            problem = f"it has {entry.size} bytes but its sidecar says {meta.size}"
        if not problem and meta.encrypted != info.encrypted:
            problem = "its sidecar disagrees with its name about encryption"
        if problem:
            return Verdict(False, reason=problem)
        kind = "safety" if info.safety else meta.kind
        return Verdict(True, kind, meta.alembic_revision, stored_sha256=meta.stored_sha256)
    from .local import LocalRepository

    if not isinstance(repo, LocalRepository) or info.encrypted:
        return Verdict(False, reason=f"its sidecar {meta_name(entry.name)} is missing")
    from ..archive import read_manifest

    try:
        manifest = read_manifest(repo.path_of(entry.name))
    except (OpsError, ValueError, TypeError, RecursionError) as exc:
        what = exc.message if isinstance(exc, OpsError) else type(exc).__name__
        return Verdict(False, reason=f"its manifest cannot be read: {what}".rstrip("."))
    problem = _consistent(info, manifest.get("database"), manifest.get("created_at"))
    if problem:
        return Verdict(False, reason=problem)
    revision = manifest.get("alembic_revision")
    kind = "safety" if info.safety else ("tables" if manifest.get("partial") else "full")
    return Verdict(True, kind, revision if isinstance(revision, str) else None,
                   has_sidecar=False)


def list_backups(
    repo: Repository, *, database: str | None = None, safety: bool | None = None,
    known: MutableMapping[tuple[str, int, int], Verdict] | None = None,
) -> Listing:
    """The repository's verified backups (optionally of one database, safety or not) and the
    files named like backups that do not count, both oldest first by each one's own time.
    ``known``: verdicts already reached, keyed by (name, size, sidecar size or -1)."""
    entries = repo.list()
    sidecars = {e.name[: -len(META_SUFFIX)]: e.size for e in entries
                if e.name.endswith(META_SUFFIX)}
    named = backups(repo, database=database, safety=safety, entries=entries)
    cache: MutableMapping[tuple[str, int, int], Verdict] = {} if known is None else known

    def key(entry: Entry) -> tuple[str, int, int]:
        return entry.name, entry.size, sidecars.get(entry.name, -1)

    todo = [(e, i) for e, i in named if key(e) not in cache]
    if todo:
        with ThreadPoolExecutor(min(READERS, len(todo))) as pool:
            verdicts = list(pool.map(
                lambda pair: judge(repo, pair[0], pair[1], pair[0].name in sidecars), todo))
        for (entry, _info), verdict in zip(todo, verdicts, strict=True):
            cache[key(entry)] = verdict
    good: list[StoredBackup] = []
    bad: list[Unverified] = []
    for entry, info in named:
        verdict = cache[key(entry)]
        if verdict.ok:
            good.append(StoredBackup(entry, info, verdict.kind, verdict.alembic_revision,
                                     verdict.stored_sha256, verdict.has_sidecar))
        else:
            bad.append(Unverified(entry, info, verdict.reason))
    return Listing(good, bad)


__all__ = [
    "META_SUFFIX", "Listing", "Sidecar", "StoredBackup", "Unverified", "Verdict", "judge",
    "list_backups", "meta_name", "read_sidecar",
]
