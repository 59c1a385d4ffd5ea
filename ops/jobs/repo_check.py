"""``mmops repo check``: prove stored backups intact without restoring them.

Every verified backup (``repository.verified``: a sidecar that agrees with the object's name
and size) is held against its sidecar; files named like backups that do not verify, and
sidecars whose object is gone, are problems. A sample (or all) of the backups is read in full
by offset — flat memory — and the sha256 of the stored bytes compared with the sidecar's, so
an ``.age`` backup is checked without its identity; with identities the decrypted archive is
verified as well (decrypted into a private 0700 directory, removed afterwards, during the same
single read). What the findings add up to is ``policy.repo_check``'s to say.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..archive import verify_archive
from ..errors import ArchiveError, ConfigError, OpsError
from ..policy.repo_check import (
    CRITICAL,
    UNKNOWN,
    WARNING,
    Problem,
    ReadData,
    RepoCheckResult,
    choose_sample,
    evaluate,
)
from ..repository.base import ObjectMissing, Repository, parse_backup_name
from ..repository.digest import Digest, DigestingReader, object_digest
from ..repository.verified import META_SUFFIX, StoredBackup, list_backups, meta_name

Progress = Callable[[str, int, int], None]
"""Called while reading with (name, bytes read, object size)."""


def _still_missing(repo: Repository, name: str) -> bool:
    """True when ``name`` is gone but its sidecar is still there (not a prune in progress,
    which deletes the object, then its sidecar)."""
    try:
        repo.open(name).close()
        return False
    except ObjectMissing:
        pass
    try:
        repo.open(meta_name(name)).close()
    except ObjectMissing:
        return False
    return True


def _orphans(repo: Repository, names: set[str], sidecars: list[str],
             database: str | None) -> list[Problem]:
    problems = []
    for sidecar in sorted(sidecars):
        name = sidecar[: -len(META_SUFFIX)]
        info = parse_backup_name(name)
        if info is None or name in names or (database and info.database != database):
            continue
        if _still_missing(repo, name):
            problems.append(Problem(name, CRITICAL, f"the object is missing (its sidecar "
                                    f"{sidecar} is there)"))
    return problems


def _decrypt_and_verify(source: Any, name: str, identities: Sequence[Any]
                        ) -> tuple[Digest, str | None]:
    """Read ``source`` once: hash the stored bytes, decrypt them into a private temp file and
    verify that archive. Returns the digest of every stored byte and what failed, if any."""
    from ..crypto.age import decrypt_to_file

    reader = DigestingReader(source)
    stream = io.BufferedReader(reader, buffer_size=8 << 20)
    failure = None
    with tempfile.TemporaryDirectory(prefix="mmops-check-") as work:  # 0700, unpredictable
        try:
            plain = decrypt_to_file(stream, Path(work) / name.removesuffix(".age"),
                                    identities, what=name)
            verify_archive(plain)
        except ConfigError as exc:
            failure = f"the identity cannot decrypt it ({exc})"
        except ArchiveError as exc:
            failure = f"with the identity, it is not an intact backup: {exc}"
    while stream.read(8 << 20):  # the digest covers every stored byte, whatever age read
        pass
    return reader.digest(), failure


def _read_one(repo: Repository, backup: StoredBackup, identities: Sequence[Any] | None,
              progress: Progress | None) -> tuple[list[Problem], int]:
    """Read one backup in full; its problems and how many bytes were read."""
    name = backup.name
    try:
        source = repo.open(name)
    except ObjectMissing:
        if _still_missing(repo, name):
            return [Problem(name, CRITICAL, "the object is missing")], 0
        return [], 0  # pruned since it was listed
    try:
        failure = None
        if backup.info.encrypted and identities:
            digest, failure = _decrypt_and_verify(source, name, identities)
        elif backup.stored_sha256 is None and not backup.info.encrypted:
            try:  # no digest recorded: a plain backup still proves itself by its checksums
                verify_archive(source)
            except ArchiveError as exc:
                return [Problem(name, CRITICAL, f"it is damaged: {exc}")], source.size
            return [], source.size
        else:
            digest = object_digest(
                source, progress=None if progress is None
                else lambda done: progress(name, done, source.size))
    finally:
        source.close()
    problems = []
    if digest.size != backup.entry.size:
        problems.append(Problem(name, CRITICAL, f"{digest.size} bytes were read, its sidecar "
                                f"says {backup.entry.size}"))
    elif backup.stored_sha256 is not None and digest.sha256 != backup.stored_sha256:
        problems.append(Problem(name, CRITICAL, "the sha256 of its stored bytes differs from "
                                "the one its sidecar recorded (the object is damaged)"))
    elif failure is not None:  # the stored bytes are as written: the key or the content fails
        problems.append(Problem(name, CRITICAL, failure))
    return problems, digest.size


def _unproven(backup: StoredBackup, read: bool, identities: bool) -> Problem | None:
    """A WARNING for a backup whose stored bytes no digest proves, unless this run read and
    verified it as an archive instead (a plain one, or an encrypted one with the identity)."""
    if backup.stored_sha256 is not None or (read and (identities or not backup.info.encrypted)):
        return None
    if not backup.has_sidecar:
        return Problem(backup.name, WARNING, "it has no sidecar (a local file checked by its "
                       "manifest only); --read-data verifies its checksums")
    return Problem(backup.name, WARNING, "its sidecar records no sha256 of the stored bytes "
                   "(published by an older mmops): only its size is checked; --read-data "
                   + ("with --identity " if backup.info.encrypted else "")
                   + "verifies its checksums")


def check_repository(
    repo: Repository, *, database: str | None = None, read_data: ReadData | None = None,
    seed: str = "", identities: Sequence[Any] | None = None,
    progress: Progress | None = None,
) -> RepoCheckResult:
    """Check every backup of ``repo`` (of ``database`` only, when given) against its sidecar
    and read ``read_data`` of them in full. Raises RepositoryError when the repository cannot
    be listed; a failure reading one object is that object's UNKNOWN problem."""
    read_data = read_data or ReadData()
    listing = list_backups(repo, database=database)
    sidecars = [e.name for e in repo.list() if e.name.endswith(META_SUFFIX)]
    problems: list[Problem] = [Problem(u.name, CRITICAL, f"not a verified backup: {u.reason}")
                               for u in listing.unverified]
    problems += _orphans(repo, {b.name for b in listing.backups}
                         | {u.name for u in listing.unverified}, sidecars, database)
    chosen = set(choose_sample([b.name for b in listing.backups], read_data, seed))
    problems += [p for b in listing.backups
                 if (p := _unproven(b, b.name in chosen, bool(identities))) is not None]
    read: list[str] = []
    bytes_read = 0
    for backup in listing.backups:
        if backup.name not in chosen:
            continue
        try:
            found, size = _read_one(repo, backup, identities, progress)
        except OpsError as exc:
            found, size = [Problem(backup.name, UNKNOWN, f"cannot be read: {exc}")], 0
        problems += found
        bytes_read += size
        read.append(backup.name)
    return evaluate(repo.url, len(listing.backups), read, bytes_read, problems,
                    read_data=read_data, seed=seed)


__all__ = ["check_repository"]
