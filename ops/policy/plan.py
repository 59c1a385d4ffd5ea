"""What a restore will do, computed from the backup and the live database's status.

Pure functions over plain data (unit-tested without a server). Every front end (CLI, web) and
every transport (direct, agent, tunnel) shows this plan, asks for the typed name when
``needs_confirmation`` says so, and refuses for the same ``refusals`` before anything changes:
the preview and the action apply one rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engine.results import RestoreMode
from ..engine.selection import select_tables, unmatched_patterns
from ..errors import RestoreRefused, UsageError
from ..interop.describe import ForeignFile
from ..interop.detect import FileKind
from .live import LiveForeignKey, LiveStatus
from .restore_mode import foreign_mode, resolve_mode


@dataclass(frozen=True)
class TableChange:
    table: str
    backup_rows: int
    live_rows: int | None  # None: the table does not exist in the live database


@dataclass(frozen=True)
class DroppedTable:
    table: str
    live_rows: int


@dataclass(frozen=True)
class Plan:
    host: str
    database: str
    backup_file: str
    kind: FileKind
    backup_database: str
    backup_created_at: str
    backup_alembic_revision: str | None
    live_alembic_revision: str | None
    mode: str  # create | replace | data-only | sql-script
    tables: list[TableChange]
    dropped: list[DroppedTable] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # each overridable by --force
    blocked: list[str] = field(default_factory=list)  # refusals --force cannot override
    description: str = ""  # what the file is, in words (foreign files)
    selected_tables: list[str] = field(default_factory=list)  # --tables patterns, if any
    # tables that reference the selection through foreign keys, added by --with-dependents
    dependents: list[str] = field(default_factory=list)
    force: bool = False
    dependent_patterns: list[str] = field(default_factory=list)  # the same, as --tables

    @property
    def restore_patterns(self) -> list[str]:
        """What the engine is asked to restore: the patterns typed and the dependents added."""
        return [*self.selected_tables, *self.dependent_patterns]

    @property
    def rows_to_load(self) -> int:
        return sum(t.backup_rows for t in self.tables)

    @property
    def live_rows_replaced(self) -> int:
        return sum(t.live_rows or 0 for t in self.tables)

    @property
    def live_rows_dropped(self) -> int:
        return sum(t.live_rows for t in self.dropped)

    @property
    def live_rows_lost(self) -> int:
        """Every live row this restore removes: replaced tables and tables that disappear."""
        return self.live_rows_replaced + self.live_rows_dropped

    @property
    def needs_confirmation(self) -> bool:
        """A create into an empty database loses nothing; everything else may."""
        return self.mode != RestoreMode.CREATE.value

    @property
    def restore_mode(self) -> RestoreMode | None:
        """The engine mode for a .mmops backup (None for foreign files)."""
        return None if self.kind.foreign else RestoreMode(self.mode)

    def check_allowed(self) -> None:
        """Raise RestoreRefused (nothing changed) for a refusal not overridden by --force."""
        if self.blocked:
            raise RestoreRefused(" ".join(self.blocked) + " Nothing was changed.")
        if self.refusals and not self.force:
            raise RestoreRefused(
                " ".join(self.refusals) + " Nothing was changed.",
                hint="Pass --force (make: FORCE=1) if this is really what you want.",
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["rows_to_load"] = self.rows_to_load
        d["live_rows_replaced"] = self.live_rows_replaced
        d["live_rows_dropped"] = self.live_rows_dropped
        return d


def _qualified(t: dict[str, Any]) -> str:
    return f"{t['schema']}.{t['name']}"


Table = tuple[str, str]


def _literal_pattern(table: Table) -> str:
    """A ``--tables`` pattern that matches exactly ``table``: both parts in double quotes, a
    quote doubled (``engine.selection`` reads psql's quoting; this is its inverse)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table)


def _dependents(chosen: set[Table], keys: Sequence[LiveForeignKey]) -> list[Table]:
    """Every table that references ``chosen`` through foreign keys, directly or through another
    such table (emptying a referenced table needs its referencing rows gone too), in order."""
    referenced_by: dict[Table, set[Table]] = {}
    for k in keys:
        referenced_by.setdefault((k.ref_schema, k.ref_name), set()).add((k.schema, k.name))
    found: set[Table] = set()
    todo = list(chosen)
    while todo:
        for ref in referenced_by.get(todo.pop(), ()):
            if ref not in chosen and ref not in found:
                found.add(ref)
                todo.append(ref)
    return sorted(found)


def _q(t: Table) -> str:
    return f"{t[0]}.{t[1]}"


def build_plan(
    manifest: dict[str, Any],
    live: LiveStatus,
    *,
    host: str,
    backup_file: str,
    mode: str = "auto",
    tables: Sequence[str] | None = None,
    force: bool = False,
    with_dependents: bool = False,
) -> Plan:
    """Compare a .mmops backup's manifest with the live database.

    ``tables`` (patterns) restores only those tables, data-only into the existing schema; a
    pattern matching nothing in the backup is a UsageError. A live table that references the
    selection through a foreign key (transitively) must come along: ``with_dependents`` adds
    it (from the backup), otherwise the plan is blocked naming every such table.
    """
    live_rows = live.rows_by_table()
    patterns = [p for p in tables or () if p]
    resolved = resolve_mode(mode, patterns, bool(live_rows))
    entries = list(manifest.get("tables", []))
    dependents: list[Table] = []
    if patterns:
        keys = [(t["schema"], t["name"]) for t in entries]
        missing = unmatched_patterns(keys, patterns)
        if missing:
            raise UsageError(
                f"The backup holds no table matching {', '.join(map(repr, missing))}; "
                "nothing was changed."
            )
        chosen = set(select_tables(keys, patterns))
        dependents = _dependents(chosen, live.foreign_keys)
        if with_dependents:
            chosen |= set(dependents)
        entries = [t for t in entries if (t["schema"], t["name"]) in chosen]
    if resolved is RestoreMode.DATA_ONLY:  # alembic_version is compared, never loaded
        entries = [t for t in entries if t["name"] != "alembic_version"]
    changes = [
        TableChange(_qualified(t), int(t.get("rows") or 0), live_rows.get(_qualified(t)))
        for t in entries
    ]
    backup_schemas = set(manifest.get("schemas") or {t["schema"] for t in manifest["tables"]})
    in_backup = {_qualified(t) for t in manifest.get("tables", [])}
    dropped: list[DroppedTable] = []
    if resolved is RestoreMode.REPLACE:
        dropped = [
            DroppedTable(name, rows) for name, rows in sorted(live_rows.items())
            if name not in in_backup and name.split(".", 1)[0] in backup_schemas
        ]
    warnings: list[str] = []
    refusals: list[str] = []
    blocked: list[str] = []
    added: list[Table] = []
    if patterns:
        in_backup_keys = {(t["schema"], t["name"]) for t in manifest.get("tables", [])}
        absent = [d for d in dependents if d not in in_backup_keys]
        if absent:
            blocked.append(
                f"{_tables(absent)} {_verb(absent, 'references', 'reference')} the selected "
                "tables through a foreign key (directly or through another table) but the "
                "backup does not hold "
                f"{'it' if len(absent) == 1 else 'them'}; restore without --tables."
            )
        elif dependents and not with_dependents:
            blocked.append(
                f"{_tables(dependents)} {_verb(dependents, 'references', 'reference')} the "
                "selected tables through a foreign key (directly or through another table) "
                f"and {'has' if len(dependents) == 1 else 'have'} to be restored with them: "
                "add them to --tables or pass --with-dependents (make: WITH_DEPENDENTS=1)."
            )
        elif dependents:
            added = dependents
    b_db, l_db = str(manifest.get("database")), live.database
    if b_db != l_db and resolved is not RestoreMode.CREATE:
        # Restoring into a fresh, empty database under another name loses nothing; putting
        # another database's backup over live data is what --force is for.
        refusals.append(f"The backup is of database {b_db!r}, not {l_db!r}.")
    b_rev, l_rev = manifest.get("alembic_revision"), live.alembic_revision
    if resolved is RestoreMode.CREATE and live_rows:
        refusals.append(
            f"Database {l_db!r} has {len(live_rows)} user tables; --mode create needs an empty "
            "database (use --mode replace to make it equal to the backup)."
        )
    if b_rev != l_rev and resolved is RestoreMode.DATA_ONLY:
        refusals.append(
            f"Alembic revisions differ (backup {b_rev or 'none'}, live {l_rev or 'none'}): a "
            "data-only restore would load rows into another schema version."
        )
    elif b_rev != l_rev and live_rows:
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
    return Plan(
        host=host,
        database=l_db,
        backup_file=backup_file,
        kind=FileKind.ARCHIVE,
        backup_database=b_db,
        backup_created_at=str(manifest.get("created_at")),
        backup_alembic_revision=b_rev,
        live_alembic_revision=l_rev,
        mode=resolved.value,
        tables=changes,
        dropped=dropped,
        warnings=warnings,
        refusals=refusals,
        blocked=blocked,
        selected_tables=patterns,
        dependents=[_q(t) for t in added],
        dependent_patterns=[_literal_pattern(t) for t in added],
        force=force,
    )


def _tables(tables: Sequence[Table]) -> str:
    names = ", ".join(map(_q, tables[:10]))
    more = f" and {len(tables) - 10} more" if len(tables) > 10 else ""
    return f"Table {names}{more}" if len(tables) == 1 else f"Tables {names}{more}"


def _verb(tables: Sequence[Table], one: str, many: str) -> str:
    return one if len(tables) == 1 else many


def _live_match(name: str, live_rows: dict[str, int]) -> str | None:
    """The live ``schema.table`` a file's table name refers to (``public`` first), or None."""
    if name in live_rows:
        return name
    if f"public.{name}" in live_rows:
        return f"public.{name}"
    same = [q for q in live_rows if q.split(".", 1)[1] == name]
    return same[0] if len(same) == 1 else None


def build_foreign_plan(
    info: ForeignFile,
    live: LiveStatus,
    *,
    host: str,
    backup_file: str,
    mode: str = "auto",
    tables: Sequence[str] | None = None,
    force: bool = False,
) -> Plan:
    """The plan for an old JSON backup or a plain SQL dump against the live database.

    Neither file has a manifest, so the plan shows what the file itself says: its tables and
    row counts, and the live rows they meet.
    """
    plan_mode = foreign_mode(info.kind, mode, [p for p in tables or () if p],
                             backup_file.rsplit("/", 1)[-1])
    live_rows = live.rows_by_table()
    changes = []
    missing = []
    for name, rows in info.tables:
        match = _live_match(name, live_rows)
        changes.append(TableChange(match or name, rows, live_rows[match] if match else None))
        if match is None:
            missing.append(name)
    warnings = list(info.warnings)
    refusals: list[str] = []
    l_rev = live.alembic_revision
    if info.kind is FileKind.LEGACY_JSON:
        replaces_rows = any(c.live_rows for c in changes)
        if info.source_database and info.source_database != live.database and replaces_rows:
            refusals.append(
                f"The backup is of database {info.source_database!r}, not {live.database!r}."
            )
        for name, error in info.failed_tables.items():
            warnings.append(
                f"Table {name} failed in the old backup ({error}); it is skipped and keeps its "
                "live rows."
            )
        if missing:
            refusals.append(
                f"The live database has no table {', '.join(missing)} (run the app's "
                "migrations first)."
            )
        if info.alembic_revision != l_rev:
            refusals.append(
                f"Alembic revisions differ (backup {info.alembic_revision or 'none'}, live "
                f"{l_rev or 'none'})."
            )
        warnings.append(
            "The file's tables are emptied and reloaded in foreign-key order, sequences are set "
            "past the restored ids; tables not in the file keep their rows."
        )
    else:
        existing = [c.table for c in changes if c.live_rows is not None]
        if info.creates_tables and not info.drops_tables and existing:
            warnings.append(
                f"The dump creates tables that already exist in {live.database!r} "
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
    return Plan(
        host=host,
        database=live.database,
        backup_file=backup_file,
        kind=info.kind,
        backup_database=str(info.source_database or "?"),
        backup_created_at=str(info.created_at or "?"),
        backup_alembic_revision=info.alembic_revision,
        live_alembic_revision=l_rev,
        mode=plan_mode,
        tables=changes,
        warnings=warnings,
        refusals=refusals,
        description=info.description,
        force=force,
    )


def row_mismatches(
    manifest: dict[str, Any], live: LiveStatus, only: Sequence[str] | None = None
) -> list[str]:
    """Tables whose live row count differs from the backup's (empty list: all equal).

    ``only`` (``schema.name``): check just the tables the restore loaded (a ``--tables``
    restore leaves the others as they were, so their counts say nothing about it).
    """
    counts = live.rows_by_table()
    wanted = None if only is None else set(only)
    bad = []
    for t in manifest.get("tables", []):
        name = _qualified(t)
        if wanted is not None and name not in wanted:
            continue
        if t["name"] == "alembic_version" and wanted is not None:
            continue
        got = counts.get(name)
        if got != t.get("rows"):
            bad.append(f"{name}: backup {t.get('rows')} rows, live {got}")
    return bad
