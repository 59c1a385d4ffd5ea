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
from ..repository.base import Repository
from ..repository.local import LocalRepository
from ..repository.verified import Unverified, list_backups
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


def resolve_backup_file(
    spec: str,
    repo: Repository,
    database: str,
    *,
    workdir: Path | None = None,
    identity: str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """``BACKUP=path``, ``BACKUP=NAME`` in the repository, or ``BACKUP=latest``: the newest
    backup of ``database`` in the repository by the timestamp in its name (never another
    database's, never by mtime). An object-store backup is downloaded into ``workdir`` (a
    private dir the caller removes); an ``.age`` one is decrypted there with ``identity``.
    ``progress`` hears how much of an object-store backup was read."""
    from ..engine.backup import safe_database_name

    path = Path(spec)
    if spec != "latest" and path.is_file():
        return _decrypted(path, workdir, identity) if spec.endswith(".age") else path
    if spec.lower().startswith(("s3://", "gs://")):  # a full object URL
        from ..repository import open_repository

        parent, _, spec = spec.rpartition("/")
        repo = open_repository(parent)
    if spec == "latest":
        listing = list_backups(repo, database=safe_database_name(database), safety=False)
        if not listing.backups:
            raise UsageError(
                f"BACKUP=latest but {repo.url} holds no verified backup of database "
                f"{database!r}{_ignored(listing.unverified)}."
            )
        name = listing.backups[-1].name
    else:
        _check_named(spec, repo)
        name = spec
    if isinstance(repo, LocalRepository):
        local = repo.path_of(name)
        return _decrypted(local, workdir, identity) if name.endswith(".age") else local
    if workdir is None:
        raise UsageError("A backup in an object store needs a work directory to download to.")
    if name.endswith(".age"):
        return _decrypted(_Reporting(repo.open(name), name, progress), workdir, identity,
                          name=name)
    return _download(repo, name, workdir, progress)


def _ignored(unverified: list[Unverified]) -> str:
    """What a 'no backup' sentence adds about files that look like backups but are not."""
    if not unverified:
        return ""
    return (f" ({len(unverified)} file(s) named like one are not verified backups, e.g. "
            f"{unverified[-1].sentence()})")


def check_backup_exists(spec: str, repo: Repository) -> None:
    """Refuse a named backup that is neither a file here nor in ``repo`` — before any SSH
    connection or tunnel opens. ``latest`` and object URLs are resolved later (the newest
    backup depends on the target database; an object store is read when the backup is)."""
    if spec == "latest" or Path(spec).is_file() or spec.lower().startswith(("s3://", "gs://")):
        return
    _check_named(spec, repo)


def _check_named(spec: str, repo: Repository) -> None:
    names = {e.name for e in repo.list(spec)} if "/" not in spec else set()
    if spec not in names:
        raise UsageError(f"Backup file {spec} does not exist (here or in {repo.url}).")


class _Reporting:
    """A stored object (``ReadAt``) that tells ``progress`` how much of it was read."""

    def __init__(self, source: Any, name: str, progress: ProgressCallback | None) -> None:
        self.source, self.name, self.progress, self.done = source, name, progress, 0

    @property
    def size(self) -> int:
        return int(self.source.size)

    def read_at(self, offset: int, size: int) -> bytes:
        data: bytes = self.source.read_at(offset, size)
        self.done += len(data)
        if self.progress is not None:
            self.progress(Progress("download", done=self.done, total=self.size, item=self.name))
        return data

    def close(self) -> None:
        self.source.close()


def _download(repo: Repository, name: str, workdir: Path,
              progress: ProgressCallback | None = None) -> Path:
    """Stream ``name`` into a 0600 file in ``workdir`` (flat memory); the caller verifies it."""
    from ..repository.base import copy_to_file

    return copy_to_file(_Reporting(repo.open(name), name, progress), workdir / name)


def _decrypted(source: Any, workdir: Path | None, identity: str | None, *,
               name: str | None = None) -> Path:
    from ..crypto.age import decrypt_to_file, load_identities

    label = name or Path(str(source)).name
    if not identity:
        raise UsageError(
            f"{label} is age-encrypted; pass the identity that can open it with --identity "
            "FILE (make: AGE_IDENTITY=FILE)."
        )
    if workdir is None:
        raise UsageError("Decrypting a backup needs a work directory.")
    plain = workdir / label.removesuffix(".age")
    return decrypt_to_file(source, plain, load_identities(identity), what=label)


def inspect_backup_file(path: Path, progress: ProgressCallback | None = None) -> BackupFile:
    """Check ``path`` here (archives: every checksum) and read what the plan needs."""
    kind = detect_kind(path)
    if kind is FileKind.ARCHIVE:
        from ..archive import read_manifest, verify_archive

        report = None
        if progress is not None:
            progress(Progress("verify", message=f"checking {path.name}"))

            def report(done: int, total: int, member: str) -> None:
                progress(Progress("verify", done=done, total=total or None, item=member))

        verify_archive(path, report)
        return BackupFile(path, kind, manifest=read_manifest(path))
    return BackupFile(path, kind, foreign=describe_foreign(path, kind))


def prepare_restore(
    transport: Transport,
    spec: str,
    repo: Repository,
    *,
    workdir: Path | None = None,
    identity: str | None = None,
    mode: str = "auto",
    tables: list[str] | None = None,
    force: bool = False,
    lock_timeout: float = 30.0,
    jobs: int = 2,
    keep_safety: int = 5,
    progress: ProgressCallback | None = None,
    no_owner: bool = False,
    no_privileges: bool = False,
    from_database: str | None = None,
    with_dependents: bool = False,
) -> PreparedRestore:
    """Everything up to the confirmation; changes nothing, refuses early. ``from_database``:
    ``latest`` is the newest backup of that database instead of the target's own (the plan
    then refuses it over live data unless ``force``, as for any other database's backup)."""
    live = transport.status()
    path = resolve_backup_file(spec, repo, from_database or live.database, workdir=workdir,
                               identity=identity, progress=progress)
    file = inspect_backup_file(path, progress)
    if file.kind is FileKind.ARCHIVE:
        assert file.manifest is not None
        plan = build_plan(file.manifest, live, host=transport.label, backup_file=str(path),
                          mode=mode, tables=tables, force=force,
                          with_dependents=with_dependents)
    else:
        assert file.foreign is not None
        plan = build_foreign_plan(file.foreign, live, host=transport.label,
                                  backup_file=str(path), mode=mode, tables=tables, force=force)
    plan.check_allowed()
    request = RestoreRequest(mode=plan.mode, kind=file.kind.value,
                             tables=plan.restore_patterns, force=force,
                             lock_timeout=lock_timeout, jobs=jobs, keep_safety=keep_safety,
                             no_owner=no_owner, no_privileges=no_privileges)
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
