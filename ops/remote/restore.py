"""``db-restore-ops``: verify locally, plan against the live DB, push, restore on the server.

The server side (``ops.agent restore``) re-verifies the file, takes a safety backup of the live
database under OPS_DIR/safety, restores in one transaction and checks row counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .agent_run import AgentSession, ProgressSink, agent_argv, run_agent
from .plan import RemoteRestorePlan, build_plan
from .settings import RemoteSettings
from .transfer import push, sha256_file


@dataclass(frozen=True)
class RemoteRestoreResult:
    plan: RemoteRestorePlan
    safety_backup: str
    rows_checked: int
    alembic_revision: str | None
    duration_s: float
    tables: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "safety_backup": self.safety_backup,
            "rows_checked": self.rows_checked,
            "alembic_revision": self.alembic_revision,
            "duration_s": self.duration_s,
            "tables": self.tables,
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


def plan_remote_restore(
    conn: Any, settings: RemoteSettings, archive: Path, *, mode: str = "auto"
) -> RemoteRestorePlan:
    """Verify ``archive`` locally and compare it with the live database. Changes nothing."""
    from ..archive import read_manifest, verify_archive

    verify_archive(archive)
    manifest = read_manifest(archive)
    live = run_agent(conn, settings.ops_dir, "status", "--env-file", settings.env_file)
    return build_plan(
        manifest, live, host=settings.host_label, backup_file=str(archive), mode=mode
    )


def remote_restore(
    conn: Any,
    settings: RemoteSettings,
    archive: Path,
    plan: RemoteRestorePlan,
    *,
    lock_timeout: float = 30.0,
    keep_safety: int = 5,
    force: bool = False,
    on_progress: ProgressSink | None = None,
) -> RemoteRestoreResult:
    """Push ``archive`` and have the agent restore it (safety backup first, one transaction)."""
    import time

    started = time.monotonic()
    args = ["--env-file", settings.env_file, "--mode", plan.mode, "--lock-timeout",
            str(lock_timeout), "--keep-safety", str(keep_safety)]
    if force:
        args.append("--force")
    digest = sha256_file(archive)
    with AgentSession(conn, agent_argv(settings.ops_dir, "restore", *args),
                      on_progress=on_progress) as s:
        ready = s.expect("ready")
        name = push(conn, archive, ready["dir"], on_progress=on_progress)
        s.send(cmd="uploaded", name=name, sha256=digest)
        result = s.expect("result")
    return RemoteRestoreResult(
        plan=plan,
        safety_backup=result["safety_backup"],
        rows_checked=int(result["rows_checked"]),
        alembic_revision=result.get("alembic_revision"),
        duration_s=round(time.monotonic() - started, 2),
        tables=len(result["restore"]["tables"]),
    )
