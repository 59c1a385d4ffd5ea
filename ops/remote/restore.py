"""``db-restore-ops``: check the file here, plan against the live DB, push, restore on the server.

Three kinds of file are accepted: our ``.mmops`` archives (verified locally, compared with the
live database table by table, optionally only ``--tables``), the old scripts' JSON backups and
plain SQL dumps (described from their own contents: they carry no manifest). Anything else is
refused before anything is pushed.

The server side (``ops.agent restore``) re-checks the file's sha256 (and an archive's
checksums), takes a safety backup of the live database under OPS_DIR/safety, restores in one
transaction and, for archives, checks the row counts of the tables it restored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, UsageError
from .agent_run import AgentSession, ProgressSink, agent_argv, run_agent
from .plan import (
    KIND_ARCHIVE,
    KIND_LEGACY_JSON,
    KIND_SQL_SCRIPT,
    ForeignFile,
    RemoteRestorePlan,
    build_foreign_plan,
    build_plan,
)
from .settings import RemoteSettings
from .transfer import push, sha256_file


@dataclass(frozen=True)
class LocalBackup:
    """A backup file on the laptop, checked and described before anything is pushed."""

    path: Path
    kind: str  # KIND_ARCHIVE, KIND_LEGACY_JSON or KIND_SQL_SCRIPT
    manifest: dict[str, Any] | None = None  # archives
    foreign: ForeignFile | None = None  # old JSON backups and SQL dumps


@dataclass(frozen=True)
class RemoteRestoreResult:
    plan: RemoteRestorePlan
    safety_backup: str
    rows_checked: int | None  # None: no manifest to check against (foreign files)
    alembic_revision: str | None
    duration_s: float
    tables: int
    kind: str = KIND_ARCHIVE
    rows_restored: int = 0
    row_check: str = "ok"
    sequences_set: int = 0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "kind": self.kind,
            "safety_backup": self.safety_backup,
            "rows_checked": self.rows_checked,
            "row_check": self.row_check,
            "rows_restored": self.rows_restored,
            "sequences_set": self.sequences_set,
            "alembic_revision": self.alembic_revision,
            "duration_s": self.duration_s,
            "tables": self.tables,
            "warnings": list(self.warnings),
        }


def resolve_backup_file(spec: str, backup_dir: Path) -> Path:
    """``BACKUP=path`` or ``BACKUP=latest`` (newest ``*.mmops`` in BACKUP_DIR)."""
    if spec == "latest":
        found = sorted(backup_dir.glob("*.mmops"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise UsageError(f"BACKUP=latest but {backup_dir} holds no .mmops file.")
        return found[-1]
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"Backup file {path} does not exist.")
    return path


def detect_kind(path: Path) -> str:
    """Which kind of backup ``path`` is, from its contents; ArchiveError when none."""
    from ..archive.format import MAGIC
    from ..engine.legacy_json import looks_like_legacy_json
    from ..engine.sql_script import looks_like_sql_script

    with path.open("rb") as fh:
        head = fh.read(len(MAGIC))
    if head == MAGIC or path.suffix == ".mmops":
        return KIND_ARCHIVE  # a damaged .mmops file gets verify_archive's own message
    if looks_like_legacy_json(path):
        return KIND_LEGACY_JSON
    if looks_like_sql_script(path):
        return KIND_SQL_SCRIPT
    raise ArchiveError(
        f"{path.name} is neither a .mmops backup, an old JSON backup nor a plain SQL dump; "
        "nothing was pushed."
    )


def inspect_backup_file(path: Path) -> LocalBackup:
    """Check ``path`` locally (archives: every checksum) and read what the plan needs."""
    kind = detect_kind(path)
    if kind == KIND_ARCHIVE:
        from ..archive import read_manifest, verify_archive

        verify_archive(path)
        return LocalBackup(path, kind, manifest=read_manifest(path))
    if kind == KIND_LEGACY_JSON:
        return LocalBackup(path, kind, foreign=describe_legacy_json(path))
    return LocalBackup(path, kind, foreign=describe_sql_script(path))


def _without_credentials(source: str | None) -> str | None:
    return source.rsplit("@", 1)[-1] if source else None


def describe_legacy_json(path: Path) -> ForeignFile:
    """Header, tables and row counts of an old JSON backup (one streaming pass)."""
    from ..engine.legacy_json_reader import rows, scan

    found = scan(path)
    tables: list[tuple[str, int]] = []
    failed: dict[str, str] = {}
    revision = None
    for name, entry in found.tables.items():
        if entry.error is not None:
            failed[name] = entry.error
        elif name == "alembic_version":
            versions = sorted(str(r.get("version_num")) for r in rows(path, entry))
            revision = ",".join(versions) or None
        else:
            tables.append((name, entry.rows))
    source = _without_credentials(found.database_url)
    return ForeignFile(
        kind=KIND_LEGACY_JSON,
        description=f"old JSON backup taken {found.backup_timestamp or '(no timestamp)'}"
        + (f" from {source}" if source else ""),
        created_at=found.backup_timestamp,
        source_database=source.rsplit("/", 1)[-1] if source else None,
        alembic_revision=revision,
        tables=tables,
        failed_tables=failed,
    )


_DUMP_VERSION = re.compile(rb"^-- Dumped (by pg_dump|from database) version (\S+)", re.M)


def describe_sql_script(path: Path) -> ForeignFile:
    """The tables a plain SQL dump loads (its COPY blocks) and their rows (one streaming pass).

    A file the agent will refuse (psql commands, truncated COPY data) may still be described;
    the agent's check pass refuses it before anything reaches the database.
    """
    from ..engine.script_splitter import CopyData, ScriptSplitter, Statement
    from ..engine.sql_script import parse_copy_target

    with path.open("rb") as fh:
        head = fh.read(4096)
    versions = {m.group(1): m.group(2).decode(errors="replace")
                for m in _DUMP_VERSION.finditer(head)}
    if versions:
        by = versions.get(b"by pg_dump", "?")
        source = versions.get(b"from database", "?")
        description = f"plain SQL dump (pg_dump {by}, from PostgreSQL {source})"
    else:
        description = "plain SQL script (no pg_dump header)"
    tables: list[tuple[str, int]] = []
    creates = drops = False
    revision = None
    with path.open("rb") as fh:
        for item in ScriptSplitter(fh):
            if isinstance(item, CopyData):
                target = parse_copy_target(item.statement)
                keep = target is not None and target.table == "alembic_version"
                count, kept = 0, []
                for chunk in item.chunks():  # streamed: only alembic_version's lines are kept
                    count += chunk.count(b"\n")
                    if keep:
                        kept += chunk.decode(errors="replace").splitlines()
                if target is None:
                    continue
                tables.append((target.qualified, count))
                if keep and target.columns == ("version_num",):
                    revision = ",".join(sorted(kept)) or None
            elif isinstance(item, Statement):
                creates = creates or item.starts_with("CREATE", "TABLE")
                drops = drops or item.starts_with("DROP", "TABLE")
    return ForeignFile(
        kind=KIND_SQL_SCRIPT,
        description=description,
        alembic_revision=revision,
        tables=tables,
        creates_tables=creates,
        drops_tables=drops,
    )


def plan_remote_restore(
    conn: Any,
    settings: RemoteSettings,
    local: LocalBackup,
    *,
    mode: str = "auto",
    tables: list[str] | None = None,
) -> RemoteRestorePlan:
    """Compare the (already checked) ``local`` file with the live database. Changes nothing."""
    live = run_agent(conn, settings.ops_dir, "status", "--env-file", settings.env_file)
    if local.foreign is not None:
        return build_foreign_plan(
            local.foreign, live, host=settings.host_label, backup_file=str(local.path),
            mode=mode, tables=tables,
        )
    assert local.manifest is not None
    return build_plan(
        local.manifest, live, host=settings.host_label, backup_file=str(local.path), mode=mode,
        tables=tables,
    )


def remote_restore(
    conn: Any,
    settings: RemoteSettings,
    local: LocalBackup,
    plan: RemoteRestorePlan,
    *,
    lock_timeout: float = 30.0,
    keep_safety: int = 5,
    force: bool = False,
    on_progress: ProgressSink | None = None,
) -> RemoteRestoreResult:
    """Push ``local`` and have the agent restore it (safety backup first, one transaction)."""
    import time

    started = time.monotonic()
    archive_mode = plan.mode if local.kind == KIND_ARCHIVE else "auto"
    args = ["--env-file", settings.env_file, "--kind", local.kind, "--mode", archive_mode,
            "--lock-timeout", str(lock_timeout), "--keep-safety", str(keep_safety)]
    if plan.selected_tables:
        args += ["--tables", ",".join(plan.selected_tables)]
    if force:
        args.append("--force")
    digest = sha256_file(local.path)
    with AgentSession(conn, agent_argv(settings.ops_dir, "restore", *args),
                      on_progress=on_progress) as s:
        ready = s.expect("ready")
        name = push(conn, local.path, ready["dir"], on_progress=on_progress)
        s.send(cmd="uploaded", name=name, sha256=digest)
        result = s.expect("result")
    restored = result["restore"]
    checked = result.get("rows_checked")
    return RemoteRestoreResult(
        plan=plan,
        safety_backup=result["safety_backup"],
        rows_checked=None if checked is None else int(checked),
        alembic_revision=result.get("alembic_revision"),
        duration_s=round(time.monotonic() - started, 2),
        tables=len(restored["tables"]),
        kind=local.kind,
        rows_restored=sum(int(t.get("rows") or 0) for t in restored["tables"]),
        row_check=str(result.get("row_check", "ok")),
        sequences_set=len(restored.get("sequences") or restored.get("sequences_set") or ()),
        warnings=tuple(restored.get("warnings") or ())
        + tuple(restored.get("plan", {}).get("warnings") or ()),
    )
