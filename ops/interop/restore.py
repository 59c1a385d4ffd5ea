"""Restores of files we did not write: the old scripts' JSON backups and plain SQL dumps.

Both run in ONE transaction on one connection, like our own restore, and return one typed
result (``ForeignRestoreResult``) whatever the kind, so callers never guess dictionary keys.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from ..dburl import DbUrl
from ..engine.connection import connection
from ..engine.pg_errors import describe_pg_error
from ..engine.results import ProgressCallback
from ..errors import ArchiveError, OpsError, RestoreFailed, RestoreRefused
from .detect import FileKind


@dataclass(frozen=True)
class LoadedRows:
    table: str  # schema-qualified
    rows: int


@dataclass(frozen=True)
class ForeignRestoreResult:
    """What a restore of an old JSON backup or a plain SQL dump did (committed)."""

    kind: FileKind
    path: str
    database: str
    tables: list[LoadedRows]
    sequences_set: int
    duration_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["total_rows"] = self.total_rows
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForeignRestoreResult:
        return cls(
            kind=FileKind(d["kind"]),
            path=str(d["path"]),
            database=str(d["database"]),
            tables=[LoadedRows(str(t["table"]), int(t["rows"])) for t in d["tables"]],
            sequences_set=int(d["sequences_set"]),
            duration_s=float(d["duration_s"]),
            warnings=[str(w) for w in d.get("warnings", [])],
        )


async def _in_one_transaction(
    url: DbUrl,
    lock_timeout: float,
    what: str,
    body: Callable[[asyncpg.Connection], Awaitable[Any]],
) -> Any:
    async with connection(url, application_name="mmops restore") as conn:
        try:
            async with conn.transaction():
                await conn.execute(
                    f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms';"
                    "SET LOCAL statement_timeout = 0"
                )
                return await body(conn)
        except (RestoreRefused, RestoreFailed, ArchiveError):
            # ArchiveError keeps its own exit code: the file is damaged, nothing changed.
            raise
        except OpsError as exc:
            raise RestoreFailed(
                f"{exc} The restore was rolled back; database {url.database!r} is unchanged."
            ) from exc
        except asyncpg.PostgresError as exc:
            raise RestoreFailed(
                f"PostgreSQL refused {what} ({describe_pg_error(exc)}); the restore was rolled "
                f"back and database {url.database!r} is unchanged."
            ) from exc


async def restore_foreign(
    url: DbUrl,
    path: Path,
    kind: FileKind,
    *,
    lock_timeout: float = 30.0,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ForeignRestoreResult:
    """Restore an old JSON backup or a plain SQL dump in one transaction."""
    started = time.monotonic()
    if kind is FileKind.LEGACY_JSON:
        from .legacy_json import restore_legacy_json

        async def legacy(conn: asyncpg.Connection) -> ForeignRestoreResult:
            r = await restore_legacy_json(conn, path, force=force, progress=progress)
            return ForeignRestoreResult(
                kind=kind, path=str(path), database=url.database,
                tables=[LoadedRows(t.table, t.rows) for t in r.tables],
                sequences_set=len(r.sequences), duration_s=round(time.monotonic() - started, 2),
                warnings=list(r.warnings),
            )

        return await _in_one_transaction(url, lock_timeout, f"the JSON backup {path.name}",
                                         legacy)
    if kind is FileKind.SQL_SCRIPT:
        from .sql_script import restore_sql_script

        async def script(conn: asyncpg.Connection) -> ForeignRestoreResult:
            r = await restore_sql_script(conn, path, progress=progress)
            return ForeignRestoreResult(
                kind=kind, path=str(path), database=url.database,
                tables=[LoadedRows(t.table, t.rows) for t in r.tables],
                sequences_set=len(r.sequences_set),
                duration_s=round(time.monotonic() - started, 2), warnings=list(r.warnings),
            )

        return await _in_one_transaction(url, lock_timeout, f"the SQL script {path.name}",
                                         script)
    raise ValueError(f"{kind} is not a foreign file kind")
