"""verify → plan → confirm → safety backup → restore → row check, over any transport.

``prepare_restore`` changes nothing: it resolves the file (``latest`` = the newest backup *of
the target database* by its own timestamp), checks it, reads the live status and builds the
plan, refusing (before anything changes) for the reasons the plan lists. The front end shows
the plan and asks for confirmation; ``run_restore`` then runs the transport's restore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.results import Progress, ProgressCallback
from ..errors import RestoreRefused, UsageError
from ..interop.describe import ForeignFile, describe_foreign
from ..interop.detect import FileKind, detect_kind
from ..policy.plan import Plan, build_foreign_plan, build_plan
from ..repository.base import backups
from ..repository.local import LocalRepository
from ..steps.results import RestoreOutcome, RestoreRequest
from ..transport.base import Transport


@dataclass(frozen=True)
class BackupFile:
    """A backup file on the laptop, checked and described before anything is pushed."""

    path: Path
    kind: FileKind
    manifest: dict[str, Any] | None = None  # archives
    foreign: ForeignFile | None = None  # old JSON backups and SQL dumps


@dataclass(frozen=True)
class PreparedRestore:
    file: BackupFile
    plan: Plan
    request: RestoreRequest


def resolve_backup_file(spec: str, repo: LocalRepository, database: str) -> Path:
    """``BACKUP=path`` or ``BACKUP=latest``: the newest backup of ``database`` in the repository,
    by the timestamp in its name (never another database's, never by mtime)."""
    if spec == "latest":
        from ..engine.backup import default_backup_name

        safe = default_backup_name(database).rsplit("-", 1)[0]
        found = [e for e, _info in backups(repo, database=safe, safety=False)
                 if e.name.endswith(".mmops")]
        if not found:
            raise UsageError(
                f"BACKUP=latest but {repo.path} holds no .mmops backup of database "
                f"{database!r}."
            )
        return repo.path_of(found[-1].name)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"Backup file {path} does not exist.")
    return path


def inspect_backup_file(path: Path, progress: ProgressCallback | None = None) -> BackupFile:
    """Check ``path`` here (archives: every checksum) and read what the plan needs."""
    kind = detect_kind(path)
    if kind is FileKind.ARCHIVE:
        from ..archive import read_manifest, verify_archive

        if progress is not None:
            progress(Progress("verify", message=f"checking {path.name}"))
        verify_archive(path)
        return BackupFile(path, kind, manifest=read_manifest(path))
    return BackupFile(path, kind, foreign=describe_foreign(path, kind))


def prepare_restore(
    transport: Transport,
    spec: str,
    repo: LocalRepository,
    *,
    mode: str = "auto",
    tables: list[str] | None = None,
    force: bool = False,
    lock_timeout: float = 30.0,
    jobs: int = 2,
    keep_safety: int = 5,
    progress: ProgressCallback | None = None,
) -> PreparedRestore:
    """Everything up to the confirmation; changes nothing, refuses early."""
    live = transport.status()
    path = resolve_backup_file(spec, repo, live.database)
    file = inspect_backup_file(path, progress)
    if file.kind is FileKind.ARCHIVE:
        assert file.manifest is not None
        plan = build_plan(file.manifest, live, host=transport.label, backup_file=str(path),
                          mode=mode, tables=tables, force=force)
    else:
        assert file.foreign is not None
        plan = build_foreign_plan(file.foreign, live, host=transport.label,
                                  backup_file=str(path), mode=mode, tables=tables, force=force)
    plan.check_allowed()
    request = RestoreRequest(mode=plan.mode, kind=file.kind.value,
                             tables=list(plan.selected_tables), force=force,
                             lock_timeout=lock_timeout, jobs=jobs, keep_safety=keep_safety)
    return PreparedRestore(file, plan, request)


def confirm(prepared: PreparedRestore, ask: Callable[[Plan], bool]) -> None:
    """Ask the front end's confirmation (the typed name) when the plan needs it."""
    if prepared.plan.needs_confirmation and not ask(prepared.plan):
        raise RestoreRefused("Restore cancelled; nothing was changed.")


def execute(
    transport: Transport, prepared: PreparedRestore, progress: ProgressCallback
) -> RestoreOutcome:
    """Safety backup → restore → row check, where the transport runs the engine."""
    return transport.restore(prepared.file.path, prepared.request, progress)


def run_restore(
    transport: Transport,
    prepared: PreparedRestore,
    *,
    ask: Callable[[Plan], bool],
    progress: ProgressCallback,
) -> RestoreOutcome:
    """``confirm`` then ``execute``."""
    confirm(prepared, ask)
    return execute(transport, prepared, progress)
