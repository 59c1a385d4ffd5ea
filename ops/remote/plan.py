"""What a remote restore will do, computed from the backup's manifest and the live status.

Pure functions over plain data (unit-tested without a server); the CLI shows the result and
asks the operator to type the database name before anything is pushed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableChange:
    table: str
    backup_rows: int
    live_rows: int | None  # None: the table does not exist in the live database


@dataclass(frozen=True)
class RemoteRestorePlan:
    host: str
    database: str
    backup_file: str
    backup_database: str
    backup_created_at: str
    backup_alembic_revision: str | None
    live_alembic_revision: str | None
    mode: str
    tables: list[TableChange]
    tables_dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_to_load(self) -> int:
        return sum(t.backup_rows for t in self.tables)

    @property
    def live_rows_replaced(self) -> int:
        return sum(t.live_rows or 0 for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_to_load"] = self.rows_to_load
        d["live_rows_replaced"] = self.live_rows_replaced
        return d


def _qualified(t: dict[str, Any]) -> str:
    return f"{t['schema']}.{t['name']}"


def build_plan(
    manifest: dict[str, Any],
    live: dict[str, Any],
    *,
    host: str,
    backup_file: str,
    mode: str = "auto",
) -> RemoteRestorePlan:
    """Compare the backup with the live database (``live``: the agent's ``status`` answer)."""
    live_tables = {_qualified(t): int(t["rows"]) for t in live.get("tables", [])}
    if mode == "auto":
        mode = "replace" if live_tables else "create"
    changes = [
        TableChange(_qualified(t), int(t.get("rows") or 0), live_tables.get(_qualified(t)))
        for t in manifest.get("tables", [])
    ]
    backup_schemas = set(manifest.get("schemas") or {t["schema"] for t in manifest["tables"]})
    in_backup = {c.table for c in changes}
    dropped = []
    if mode == "replace":
        dropped = sorted(
            name for name in live_tables
            if name not in in_backup and name.split(".", 1)[0] in backup_schemas
        )
    warnings = []
    if manifest.get("database") != live.get("database"):
        warnings.append(
            f"The backup is of database {manifest.get('database')!r}; it will be restored "
            f"into {live.get('database')!r}."
        )
    b_rev, l_rev = manifest.get("alembic_revision"), live.get("alembic_revision")
    if b_rev != l_rev:
        warnings.append(
            f"Alembic revisions differ: backup {b_rev or 'none'}, live {l_rev or 'none'}; "
            "the schema will be the backup's (the app may need migrating afterwards)."
        )
    if manifest.get("partial"):
        warnings.append("The backup holds only some tables.")
    return RemoteRestorePlan(
        host=host,
        database=str(live.get("database")),
        backup_file=backup_file,
        backup_database=str(manifest.get("database")),
        backup_created_at=str(manifest.get("created_at")),
        backup_alembic_revision=b_rev,
        live_alembic_revision=l_rev,
        mode=mode,
        tables=changes,
        tables_dropped=dropped,
        warnings=warnings,
    )
