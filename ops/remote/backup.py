"""``db-backup-ops``: run the agent's backup on the server and pull the file back, verified."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.results import TableSummary
from .agent_run import AgentSession, ProgressSink, agent_argv, run_agent
from .settings import RemoteSettings
from .transfer import pull, remove_stale_partials


@dataclass(frozen=True)
class RemoteBackupResult:
    host: str
    path: str
    size_bytes: int
    database: str
    server_version: str
    alembic_revision: str | None
    created_at: str
    tables: list[TableSummary]
    duration_s: float
    sha256: str
    cleaned: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.total_rows
        return d


def remote_backup(
    conn: Any,
    settings: RemoteSettings,
    *,
    backup_dir: Path,
    jobs: int = 2,
    tables: list[str] | None = None,
    on_progress: ProgressSink | None = None,
) -> RemoteBackupResult:
    """Back up the server's database into ``backup_dir`` (the agent must be current)."""
    started = time.monotonic()
    ops_dir = settings.ops_dir
    cleaned = [str(p) for p in remove_stale_partials(backup_dir)]
    cleaned += run_agent(conn, ops_dir, "cleanup").get("removed", [])
    args = ["--env-file", settings.env_file, "--jobs", str(jobs)]
    if tables:
        args += ["--tables", ",".join(tables)]
    with AgentSession(conn, agent_argv(ops_dir, "backup", *args), on_progress=on_progress) as s:
        ready = s.expect("ready")
        local = pull(
            conn, ready["path"], backup_dir, expected_sha256=ready["sha256"],
            on_progress=on_progress,
        )
        s.send(cmd="done")
        s.expect("result")
    b = ready["backup"]
    return RemoteBackupResult(
        host=settings.host_label,
        path=str(local),
        size_bytes=local.stat().st_size,
        database=b["database"],
        server_version=b["server_version"],
        alembic_revision=b.get("alembic_revision"),
        created_at=b["created_at"],
        tables=[TableSummary(**t) for t in b["tables"]],
        duration_s=round(time.monotonic() - started, 2),
        sha256=ready["sha256"],
        cleaned=cleaned,
    )
