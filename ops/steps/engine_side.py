"""The steps that run next to the engine, written once for every mode.

Direct and tunnel modes call these on the laptop (the tunnel with a URL pointing at its
forward); the agent calls them on the server. So a safety backup, its retention, the restore,
the row check and what a message says after an interruption are the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..archive import check_written
from ..dburl import DbUrl
from ..engine.backup import backup, default_backup_name, safe_database_name
from ..engine.results import Progress, ProgressCallback, RestoreMode
from ..errors import Interrupted, OpsError, RepositoryError, RestoreFailed
from ..interop.detect import FileKind
from ..policy.keep_newest import select_beyond_newest
from ..policy.live import LiveStatus
from ..policy.plan import row_mismatches
from ..repository.base import NameInUse, Repository
from ..repository.local import LocalRepository
from ..repository.verified import list_backups
from .results import BackupOutcome, BackupRequest, RestoreOutcome, RestoreRequest
from .staging import private_staging
from .status import read_live_status

if TYPE_CHECKING:
    from .publish import PublishOutcome

SAFETY_PREFIX = "safety-"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def backup_into(
    url: DbUrl,
    repo: LocalRepository,
    request: BackupRequest,
    *,
    host: str,
    progress: ProgressCallback | None = None,
    prefix: str = "",
    checksum: bool = False,
) -> BackupOutcome:
    """Back up ``url`` into ``repo`` and verify the file; an unverified file never stays."""
    emit = progress or (lambda _p: None)
    started = time.monotonic()
    repo.ensure()
    cleaned = [str(p) for p in repo.remove_stale_partials()]
    target = repo.path_of(request.name or prefix + default_backup_name(url.database))
    if target.exists() and not request.name:
        # Two backups of one database within a second (quick restores' safety backups).
        target = repo.path_of(prefix + default_backup_name(url.database, precise=True))
    result = await backup(
        url, target, jobs=request.jobs, tables=request.tables or None,
        exclude_tables=request.exclude_tables or None, progress=progress, level=request.level,
        yield_after=request.yield_after or None, lock_timeout=request.lock_timeout,
    )
    path = Path(result.path)
    try:
        emit(Progress("verify", message=f"checking {path.name}"))
        # The file read back must be the bytes the writer produced (their sha256), and its
        # structure sound; decompressing it all again is verify_archive's (and every restore's).
        report = check_written(path, result.file_sha256)
        digest = result.file_sha256 if checksum else ""
    except BaseException:
        path.unlink(missing_ok=True)  # never leave an unverified file under a backup's name
        raise
    return BackupOutcome(
        host=host, path=str(path), size_bytes=result.size_bytes, sha256=digest,
        database=result.database, server_version=result.server_version,
        alembic_revision=result.alembic_revision, created_at=result.created_at,
        tables=result.tables, duration_s=round(time.monotonic() - started, 2),
        verified_members=report.members, cleaned=cleaned,
    )


@contextlib.contextmanager
def reserved_name(
    local: LocalRepository, database: str, *, name: str | None = None,
    repo: Repository | None = None, suffix: str = "",
) -> Iterator[str]:
    """A backup name no other run uses, held until the block ends: ``NAME`` in ``local`` (and
    ``NAME + suffix`` in ``repo``) neither exists nor is being written by another run. The
    default name has seconds; when it is taken (two backups in the same second), the same
    with microseconds; an explicit ``name`` that is taken stops at once (RepositoryError)."""
    candidates = [name] if name else [default_backup_name(database),
                                      default_backup_name(database, precise=True)]
    refusal: NameInUse | None = None
    for candidate in candidates:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(local.reserve(candidate))
                if repo is not None:
                    stack.enter_context(_held_in(repo, candidate + suffix))
            except NameInUse as exc:
                refusal = exc
                continue
            yield candidate
            return
    assert refusal is not None
    if name:
        raise RepositoryError(f"{refusal.message} Nothing was backed up; choose another name.")
    raise RepositoryError(
        f"{refusal.message} Nothing was backed up: another backup of database {database!r} "
        "started at the same moment; run this one again.")


@contextlib.contextmanager
def _held_in(repo: Repository, name: str) -> Iterator[None]:
    """``name`` reserved in a repository other than the staging directory."""
    if isinstance(repo, LocalRepository):
        with repo.reserve(name):
            yield
        return
    if any(e.name == name for e in repo.list(name)):
        raise NameInUse(f"{repo.url}/{name} already exists; not overwriting it.")
    marker = f"{name}.reserved"
    hold = contextlib.ExitStack()
    try:
        hold.enter_context(repo.lock(marker))
    except RepositoryError as exc:
        if any(e.name == marker for e in repo.list(marker)):
            raise NameInUse(f"Another mmops run is writing {repo.url}/{name} at this "
                            "moment.") from exc
        raise
    with hold:
        yield


async def backup_and_publish(
    url: DbUrl,
    staging: LocalRepository,
    request: BackupRequest,
    *,
    host: str,
    progress: ProgressCallback | None = None,
    checksum: bool = False,
    drop_local: bool = True,
    unsent: LocalRepository | None = None,
) -> BackupOutcome:
    """backup → verify → publish → prune.

    Without ``request.publish`` the verified file in ``staging`` is the result. With it, the
    file is streamed into the repository (encrypted when asked), the retention rules applied.
    ``drop_local`` (the laptop: ``staging`` is BACKUP_DIR or ``-o DIR``): unless KEEP_LOCAL,
    the plain file is written only in a private 0700 directory under ``$TMPDIR``, removed
    however the run ends. Without it, ``staging`` is already a private directory its caller
    removes (the agent's, the scheduled run's).

    A verified backup whose upload failed is never thrown away: it stays in (or is moved to)
    ``unsent`` — default ``staging`` when ``drop_local`` — encrypted when ENCRYPT_TO asks, and
    the error says where."""
    pub = request.publish
    database = safe_database_name(url.database)
    if pub is None:
        with reserved_name(staging, database, name=request.name) as name:
            return await backup_into(url, staging, replace(request, name=name), host=host,
                                     progress=progress, checksum=checksum)
    from .publish import PublishOutcome, open_target, prune

    repo = open_target(pub)
    here = getattr(repo, "path", None)
    in_place = (not pub.encrypt_to and here is not None
                and Path(here).resolve() == staging.path.resolve())
    keep_plain = in_place or pub.keep_local or not drop_local
    keep_unsent = unsent if unsent is not None else (staging if drop_local else None)
    suffix = ".age" if pub.encrypt_to else ""
    with contextlib.ExitStack() as stack:
        where = staging if keep_plain else LocalRepository(stack.enter_context(private_staging()))
        name = stack.enter_context(reserved_name(
            where, database, name=request.name, repo=None if in_place else repo,
            suffix=suffix))
        outcome = await backup_into(url, where, replace(request, name=name), host=host,
                                    progress=progress, checksum=checksum)
        path = Path(outcome.path)
        if in_place:
            published = PublishOutcome(repository=repo.url, name=path.name,
                                       size_bytes=outcome.size_bytes, encrypted=False)
        else:
            lasting = keep_plain and drop_local  # BACKUP_DIR / -o DIR: the file stays there
            published = await _publish_or_keep(outcome, request, repo, progress,
                                                lasting=lasting, unsent=keep_unsent)
        if not keep_plain:
            path.unlink(missing_ok=True)
            path = Path()
    if pub.keep:
        deleted, locked, unverified = await asyncio.to_thread(prune, repo, database, pub.keep)
        published = replace(published, deleted=deleted, locked=locked,
                            unverified=[u.sentence() for u in unverified])
    return replace(outcome, path=str(path) if path != Path() else "", published=published)


async def _publish_or_keep(
    outcome: BackupOutcome, request: BackupRequest, repo: Repository,
    progress: ProgressCallback | None, *, lasting: bool, unsent: LocalRepository | None,
) -> PublishOutcome:
    """Publish the verified file; when the upload fails, say where it stays (``lasting``: it
    is already in BACKUP_DIR) or keep it in ``unsent`` (encrypted as the repository would
    have held it) and say so."""
    from .publish import publish

    pub = request.publish
    assert pub is not None
    path = Path(outcome.path)
    meta = {
        "database": outcome.database, "created_at": outcome.created_at,
        "server_version": outcome.server_version,
        "alembic_revision": outcome.alembic_revision,
        "kind": "tables" if request.tables or request.exclude_tables else "full",
        "tables": len(outcome.tables), "rows": outcome.total_rows,
    }
    try:
        return await asyncio.to_thread(publish, path, repo, encrypt_to=pub.encrypt_to,
                                       progress=progress, meta=meta)
    except OpsError as exc:
        if not lasting and unsent is None:
            raise
        kept = path.resolve()
        if not lasting and unsent is not None:
            try:
                kept_as = await asyncio.to_thread(publish, path, unsent.ensure(),
                                                  encrypt_to=pub.encrypt_to, meta=meta)
            except OpsError as again:
                raise type(exc)(
                    f"{exc.message} The verified backup could not be kept either "
                    f"({again.message})", hint=exc.hint) from exc
            kept = unsent.path_of(kept_as.name).resolve()
        raise type(exc)(
            f"{exc.message} The verified backup is kept at {kept}; store it in {repo.url} "
            "when the repository works again.", hint=exc.hint) from exc


def prune_safety(repo: LocalRepository, database: str, keep: int) -> list[str]:
    """Keep the newest ``keep`` verified safety backups of ``database`` (by their own
    timestamps); other databases' safety backups, and files that only look like safety
    backups, are never touched."""
    items = [(b.name, b.info.database, b.info.created_at)
             for b in list_backups(repo, database=database, safety=True).backups]
    doomed = select_beyond_newest(items, keep)
    for name in doomed:
        repo.delete(name)
    return doomed


async def restore_from(
    url: DbUrl,
    file: Path,
    request: RestoreRequest,
    safety: LocalRepository,
    *,
    host: str,
    progress: ProgressCallback | None = None,
    safety_note: str = "",
) -> RestoreOutcome:
    """Engine checks → safety backup (when there is anything to save) → restore in one
    transaction → row check. ``safety_note`` follows the safety backup's path in messages
    (e.g. " (on the server)").

    Every message says what state the database is in: unchanged (rolled back), restored
    (committed), or unknown with how to check; and where the safety backup is.
    """
    emit = progress or (lambda _p: None)
    started = time.monotonic()
    kind = FileKind(request.kind)
    if not kind.foreign:
        # Everything the engine would refuse (dependencies of --tables, columns, revisions)
        # is refused here, before a safety backup is even taken.
        from ..engine.restore import plan_restore

        await plan_restore(url, file, mode=RestoreMode(request.mode), force=request.force,
                           tables=request.tables or None, no_owner=request.no_owner,
                           no_privileges=request.no_privileges)
    before = await read_live_status(url)
    safety_path: str | None = None
    if before.tables:
        emit(Progress("safety", message=f"safety backup of {url.database}"))
        try:
            sb = await backup_into(url, safety, BackupRequest(jobs=request.jobs), host=host,
                                   progress=progress, prefix=SAFETY_PREFIX)
        except asyncio.CancelledError:
            raise Interrupted(
                f"Interrupted during the safety backup; database {url.database!r} was not "
                "changed and the partial safety backup was removed."
            ) from None
        safety_path = sb.path
        prune_safety(safety, safe_database_name(url.database), request.keep_safety)
    where = f" The safety backup is {safety_path}{safety_note}." if safety_path else ""
    try:
        if kind.foreign:
            from ..interop.restore import restore_foreign

            fr = await restore_foreign(url, file, kind, lock_timeout=request.lock_timeout,
                                       force=request.force, progress=progress)
            restored_tables, rows = len(fr.tables), fr.total_rows
            sequences, warnings = fr.sequences_set, list(fr.warnings)
            loaded: list[str] | None = None
        else:
            from ..engine.restore import restore

            er = await restore(url, file, mode=RestoreMode(request.mode),
                               lock_timeout=request.lock_timeout, force=request.force,
                               tables=request.tables or None, progress=progress,
                               no_owner=request.no_owner, no_privileges=request.no_privileges)
            restored_tables, rows = len(er.tables), er.total_rows
            sequences, warnings = 0, list(er.plan.warnings)
            loaded = list(er.plan.tables_to_load)
    except asyncio.CancelledError:
        raise Interrupted(
            f"Interrupted during the restore: PostgreSQL rolls back a transaction that had not "
            f"committed, so database {url.database!r} is unchanged unless the commit was "
            f"already under way; check it with `mmops remote status` (or a query).{where}"
        ) from None
    except OpsError as exc:
        raise type(exc)(f"{exc.message}{where}", hint=exc.hint) from exc
    # Committed from here on: no message may say "rolled back" or "nothing was changed".
    try:
        after = await read_live_status(url)
    except asyncio.CancelledError:
        raise Interrupted(
            f"The restore had committed (database {url.database!r} holds the backup) when it "
            f"was interrupted; the row check did not run.{where}"
        ) from None
    return _checked(request, kind, file, after, loaded, restored_tables, rows, sequences,
                    warnings, safety_path, host, started, where)


def _checked(
    request: RestoreRequest, kind: FileKind, file: Path, after: LiveStatus,
    loaded: list[str] | None, restored_tables: int, rows: int, sequences: int,
    warnings: list[str], safety_path: str | None, host: str, started: float, where: str,
) -> RestoreOutcome:
    if kind.foreign:
        checked, check = None, f"skipped: {kind.label} has no manifest to compare row counts with"
    else:
        from ..archive import read_manifest

        only = loaded if request.tables else None
        bad = row_mismatches(read_manifest(file), after, only)
        if bad:
            raise RestoreFailed(
                "The restore committed, but row counts differ from the backup: "
                + "; ".join(bad[:10]) + f".{where}"
            )
        wanted = set(only) if only is not None else None
        checked = sum(t.rows for t in after.tables
                      if wanted is None or t.qualified in wanted)
        check = "ok" if only is None else (
            f"ok for the {len(only):,} {'table' if len(only) == 1 else 'tables'} restored")
    return RestoreOutcome(
        host=host, database=after.database, kind=kind.value, mode=request.mode,
        tables=restored_tables, rows_restored=rows, row_check=check, rows_checked=checked,
        alembic_revision=after.alembic_revision, sequences_set=sequences,
        safety_backup=safety_path, duration_s=round(time.monotonic() - started, 2),
        warnings=warnings,
    )
