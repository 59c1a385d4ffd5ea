"""What a remote restore will do, computed from the backup's manifest and the live status.

Pure functions over plain data (unit-tested without a server); the CLI shows the result and
asks the operator to type the database name before anything is pushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engine.selection import select_tables, unmatched_patterns
from ..errors import UsageError

KIND_ARCHIVE = "mmops"
KIND_LEGACY_JSON = "legacy-json"
KIND_SQL_SCRIPT = "sql-script"
KIND_LABELS = {
    KIND_ARCHIVE: "a .mmops backup",
    KIND_LEGACY_JSON: "an old JSON backup",
    KIND_SQL_SCRIPT: "a plain SQL dump",
}


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
    kind: str = KIND_ARCHIVE  # KIND_ARCHIVE, KIND_LEGACY_JSON or KIND_SQL_SCRIPT
    description: str = ""  # what the file is, in words (foreign files)
    selected_tables: list[str] = field(default_factory=list)  # --tables patterns, if any

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


@dataclass(frozen=True)
class ForeignFile:
    """What the laptop read from an old JSON backup or a plain SQL dump (no manifest)."""

    kind: str  # KIND_LEGACY_JSON or KIND_SQL_SCRIPT
    description: str
    created_at: str | None = None
    source_database: str | None = None
    alembic_revision: str | None = None
    tables: list[tuple[str, int]] = field(default_factory=list)  # (name as in the file, rows)
    failed_tables: dict[str, str] = field(default_factory=dict)  # legacy: name -> its error
    creates_tables: bool = False  # SQL: has CREATE TABLE statements
    drops_tables: bool = False  # SQL: has DROP TABLE statements (pg_dump --clean)
    warnings: list[str] = field(default_factory=list)


def _qualified(t: dict[str, Any]) -> str:
    return f"{t['schema']}.{t['name']}"


def build_plan(
    manifest: dict[str, Any],
    live: dict[str, Any],
    *,
    host: str,
    backup_file: str,
    mode: str = "auto",
    tables: Sequence[str] | None = None,
) -> RemoteRestorePlan:
    """Compare the backup with the live database (``live``: the agent's ``status`` answer).

    ``tables`` (patterns) restores only those tables, data-only into the existing schema, as
    the engine does; a pattern matching nothing in the backup is a UsageError.
    """
    live_tables = {_qualified(t): int(t["rows"]) for t in live.get("tables", [])}
    patterns = [p for p in tables or () if p]
    mode = resolve_mode(mode, patterns, bool(live_tables))
    entries = list(manifest.get("tables", []))
    if patterns:
        keys = [(t["schema"], t["name"]) for t in entries]
        missing = unmatched_patterns(keys, patterns)
        if missing:
            raise UsageError(
                f"The backup holds no table matching {', '.join(map(repr, missing))}; "
                "nothing was pushed."
            )
        chosen = set(select_tables(keys, patterns))
        entries = [t for t in entries if (t["schema"], t["name"]) in chosen]
    if mode == "data-only":  # the engine compares alembic_version, it does not load it
        entries = [t for t in entries if t["name"] != "alembic_version"]
    changes = [
        TableChange(_qualified(t), int(t.get("rows") or 0), live_tables.get(_qualified(t)))
        for t in entries
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
    if b_rev != l_rev and mode == "data-only":
        warnings.append(
            f"Alembic revisions differ: backup {b_rev or 'none'}, live {l_rev or 'none'}; a "
            "data-only restore is refused unless --force."
        )
    elif b_rev != l_rev:
        warnings.append(
            f"Alembic revisions differ: backup {b_rev or 'none'}, live {l_rev or 'none'}; "
            "the schema will be the backup's (the app may need migrating afterwards)."
        )
    if manifest.get("partial"):
        warnings.append("The backup holds only some tables.")
    if patterns:
        warnings.append(
            "Only the tables listed are restored (data-only, into the existing schema); every "
            "other table keeps its rows."
        )
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
        selected_tables=patterns,
    )


def resolve_mode(mode: str, tables: Sequence[str], live_has_tables: bool) -> str:
    """``auto``: selected tables → data-only; else replace a non-empty database, create into
    an empty one. Selected tables with another explicit mode are refused (as the engine does)."""
    if tables:
        if mode not in ("auto", "data-only"):
            raise UsageError(
                f"--tables restores into the existing schema (mode data-only), not --mode {mode}; "
                "drop --mode or --tables. Nothing was pushed."
            )
        return "data-only"
    if mode == "auto":
        return "replace" if live_has_tables else "create"
    return mode


def _live_match(name: str, live_tables: dict[str, int]) -> str | None:
    """The live ``schema.table`` a file's table name refers to (``public`` first), or None."""
    if name in live_tables:
        return name
    if f"public.{name}" in live_tables:
        return f"public.{name}"
    same = [q for q in live_tables if q.split(".", 1)[1] == name]
    return same[0] if len(same) == 1 else None


def build_foreign_plan(
    info: ForeignFile,
    live: dict[str, Any],
    *,
    host: str,
    backup_file: str,
    mode: str = "auto",
    tables: Sequence[str] | None = None,
) -> RemoteRestorePlan:
    """The plan for an old JSON backup or a plain SQL dump (``info``) against ``live``.

    Neither file has a manifest, so the plan shows what the file itself says: its tables and
    row counts, and the live rows they meet. ``--tables`` and the archive modes do not apply.
    """
    label = KIND_LABELS[info.kind]
    if tables:
        raise UsageError(
            f"--tables applies to .mmops backups; {backup_file} is {label}, restored whole. "
            "Nothing was pushed."
        )
    allowed = ("auto", "data-only") if info.kind == KIND_LEGACY_JSON else ("auto",)
    if mode not in allowed:
        raise UsageError(
            f"--mode {mode} applies to .mmops backups; {backup_file} is {label} and has its "
            "own semantics (see the plan). Nothing was pushed."
        )
    live_tables = {_qualified(t): int(t["rows"]) for t in live.get("tables", [])}
    changes = []
    missing = []
    for name, rows in info.tables:
        match = _live_match(name, live_tables)
        changes.append(
            TableChange(match or name, rows, live_tables[match] if match else None)
        )
        if match is None:
            missing.append(name)
    warnings = list(info.warnings)
    l_rev = live.get("alembic_revision")
    if info.kind == KIND_LEGACY_JSON:
        plan_mode = "data-only"
        for name, error in info.failed_tables.items():
            warnings.append(
                f"Table {name} failed in the old backup ({error}); it is skipped and keeps its "
                "live rows."
            )
        if missing:
            warnings.append(
                f"The live database has no table {', '.join(missing)}; the restore will be "
                "refused (run the app's migrations first, or --force to skip them)."
            )
        if info.alembic_revision != l_rev:
            warnings.append(
                f"Alembic revisions differ: backup {info.alembic_revision or 'none'}, live "
                f"{l_rev or 'none'}; the restore is refused unless --force."
            )
        warnings.append(
            "The file's tables are emptied and reloaded in foreign-key order, sequences are set "
            "past the restored ids; tables not in the file keep their rows."
        )
    else:
        plan_mode = "sql-script"
        existing = [c.table for c in changes if c.live_rows is not None]
        if info.creates_tables and not info.drops_tables and existing:
            warnings.append(
                f"The dump creates tables that already exist in {live.get('database')!r} "
                f"({', '.join(existing[:5])}) and was not made with pg_dump --clean: PostgreSQL "
                "will refuse it and nothing will change (dump with --clean --if-exists, or "
                "restore into an empty database)."
            )
        elif not info.creates_tables and existing:
            warnings.append(
                "The dump holds data only: its rows are added to the live tables, not put in "
                "place of them."
            )
        warnings.append(
            "The script runs as written, in one transaction; row counts are not checked "
            "afterwards (a SQL dump has no manifest)."
        )
    return RemoteRestorePlan(
        host=host,
        database=str(live.get("database")),
        backup_file=backup_file,
        backup_database=str(info.source_database or "?"),
        backup_created_at=str(info.created_at or "?"),
        backup_alembic_revision=info.alembic_revision,
        live_alembic_revision=l_rev,
        mode=plan_mode,
        tables=changes,
        warnings=warnings,
        kind=info.kind,
        description=info.description,
    )
