"""``db-backup-ssh`` / ``db-restore-ssh``: the engine runs here, the database is reached through
an open ``TunnelSession`` (see ``tunnel_session``). Same file format and restore semantics as the
agent mode: backups are verified before they are announced; a restore is planned, confirmed by
the caller, preceded by a safety backup taken through the same tunnel, and runs in one
transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..engine.results import ProgressCallback, RestoreMode, RestorePlan, RestoreResult, TableSummary
from ..errors import RestoreFailed
from .tunnel_session import TunnelSession

SAFETY_DIR = "safety"
SAFETY_PREFIX = "safety-"
SAFETY_KEEP_DEFAULT = 5


@dataclass(frozen=True)
class TunnelBackupResult:
    host: str
    tunnel: str
    path: str
    size_bytes: int
    database: str
    server_version: str
    alembic_revision: str | None
    created_at: str
    tables: list[TableSummary]
    duration_s: float
    verified_members: int
    bytes_through_tunnel: int

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.total_rows
        return d


@dataclass(frozen=True)
class TunnelRestoreResult:
    host: str
    tunnel: str
    backup_file: str
    safety_backup: str
    restore: RestoreResult
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "tunnel": self.tunnel,
            "backup_file": self.backup_file,
            "safety_backup": self.safety_backup,
            "restore": self.restore.to_dict(),
            "duration_s": self.duration_s,
        }


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) 0700 if missing; an existing dir keeps its mode."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    return path


async def tunnel_backup(
    session: TunnelSession,
    backup_dir: Path,
    *,
    jobs: int = 2,
    tables: Sequence[str] | None = None,
    exclude_tables: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    name_prefix: str = "",
) -> TunnelBackupResult:
    """Back up the server's database into ``backup_dir`` through the tunnel, then verify it."""
    from ..archive import verify_archive
    from ..engine.backup import backup, default_backup_name
    from ..engine.results import Progress

    started = time.monotonic()
    before = session.forward.stats()
    target = private_dir(backup_dir) / (name_prefix + default_backup_name(session.url.database))
    result = await backup(
        session.url, target, jobs=jobs, tables=tables or None,
        exclude_tables=exclude_tables or None, progress=progress,
    )
    if progress is not None:
        progress(Progress("verify", message=f"checking {Path(result.path).name}"))
    try:
        report = verify_archive(Path(result.path))
    except BaseException:
        Path(result.path).unlink(missing_ok=True)  # never leave an unverified file as a backup
        raise
    after = session.forward.stats()
    return TunnelBackupResult(
        host=session.ssh,
        tunnel=session.describe(),
        path=result.path,
        size_bytes=result.size_bytes,
        database=result.database,
        server_version=result.server_version,
        alembic_revision=result.alembic_revision,
        created_at=result.created_at,
        tables=result.tables,
        duration_s=round(time.monotonic() - started, 2),
        verified_members=report.members,
        bytes_through_tunnel=after.bytes_from_server - before.bytes_from_server,
    )


def choose_mode(requested: str, tables: Sequence[str] | None) -> RestoreMode:
    """``auto``: selected tables → data-only into the existing schema; else replace."""
    if requested != "auto":
        return RestoreMode(requested)
    return RestoreMode.DATA_ONLY if tables else RestoreMode.REPLACE


def select_safety_to_delete(names: Sequence[str], keep: int) -> list[str]:
    """Safety backups embed a UTC timestamp in their names: keep the newest ``keep``."""
    ordered = sorted(names, reverse=True)
    return sorted(ordered[max(keep, 0):])


def prune_safety(safety_dir: Path, keep: int) -> list[str]:
    names = [p.name for p in safety_dir.glob(f"{SAFETY_PREFIX}*.mmops")]
    doomed = select_safety_to_delete(names, keep)
    for name in doomed:
        (safety_dir / name).unlink(missing_ok=True)
    return doomed


async def tunnel_plan(
    session: TunnelSession,
    archive: Path,
    *,
    mode: RestoreMode,
    tables: Sequence[str] | None = None,
    force: bool = False,
) -> RestorePlan:
    """What the restore will do to the live database (changes nothing; the file is verified
    by the caller first)."""
    from ..engine.restore import plan_restore

    return await plan_restore(session.url, archive, mode=mode, force=force, tables=tables or None)


async def tunnel_restore(
    session: TunnelSession,
    archive: Path,
    plan: RestorePlan,
    *,
    backup_dir: Path,
    jobs: int = 2,
    tables: Sequence[str] | None = None,
    force: bool = False,
    lock_timeout: float = 30.0,
    keep_safety: int = SAFETY_KEEP_DEFAULT,
    progress: ProgressCallback | None = None,
) -> TunnelRestoreResult:
    """Safety backup of the live database into BACKUP_DIR/safety, then restore in one transaction.

    Call only after the operator confirmed ``plan``. A failing restore rolls back; the live
    database is then unchanged and the safety backup is kept.
    """
    from ..engine.restore import restore
    from ..engine.results import Progress

    started = time.monotonic()
    if progress is not None:
        progress(Progress("safety", message=f"safety backup of {plan.database}"))
    safety = await tunnel_backup(
        session, backup_dir / SAFETY_DIR, jobs=jobs, progress=progress, name_prefix=SAFETY_PREFIX
    )
    prune_safety(Path(safety.path).parent, keep_safety)
    try:
        result = await restore(
            session.url, archive, mode=plan.mode, lock_timeout=lock_timeout, force=force,
            tables=tables or None, progress=progress,
        )
    except RestoreFailed as exc:
        raise RestoreFailed(f"{exc.message} The safety backup is {safety.path}.",
                            hint=exc.hint) from exc
    return TunnelRestoreResult(
        host=session.ssh,
        tunnel=session.describe(),
        backup_file=str(archive),
        safety_backup=safety.path,
        restore=result,
        duration_s=round(time.monotonic() - started, 2),
    )


async def tunnel_restore_foreign(
    session: TunnelSession,
    path: Path,
    restorer: Callable[..., Awaitable[dict[str, Any]]],
    *,
    backup_dir: Path,
    jobs: int = 2,
    force: bool = False,
    lock_timeout: float = 30.0,
    keep_safety: int = SAFETY_KEEP_DEFAULT,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """An old JSON backup or a plain SQL dump through the tunnel: safety backup first, then
    the file in one transaction (``restorer`` comes from ``ops.engine.foreign.restorer_for``)."""
    from ..engine.results import Progress

    if progress is not None:
        progress(Progress("safety", message=f"safety backup of {session.url.database}"))
    safety = await tunnel_backup(
        session, backup_dir / SAFETY_DIR, jobs=jobs, progress=progress, name_prefix=SAFETY_PREFIX
    )
    prune_safety(Path(safety.path).parent, keep_safety)
    try:
        summary = await restorer(
            session.url, path, lock_timeout=lock_timeout, force=force, progress=progress
        )
    except RestoreFailed as exc:
        raise RestoreFailed(f"{exc.message} The safety backup is {safety.path}.",
                            hint=exc.hint) from exc
    return {"restore": summary, "safety_backup": safety.path, "host": session.ssh}


__all__ = [
    "TunnelBackupResult",
    "TunnelRestoreResult",
    "choose_mode",
    "prune_safety",
    "select_safety_to_delete",
    "tunnel_backup",
    "tunnel_plan",
    "tunnel_restore",
    "tunnel_restore_foreign",
]
