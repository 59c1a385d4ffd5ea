"""What an old JSON backup or a plain SQL dump holds, read in one streaming pass (no manifest).

Used to show the plan before a restore; the restore itself re-reads and re-checks the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .detect import FileKind


@dataclass(frozen=True)
class ForeignFile:
    """What the laptop read from an old JSON backup or a plain SQL dump (no manifest)."""

    kind: FileKind
    description: str
    created_at: str | None = None
    source_database: str | None = None
    alembic_revision: str | None = None
    tables: list[tuple[str, int]] = field(default_factory=list)  # (name as in the file, rows)
    failed_tables: dict[str, str] = field(default_factory=dict)  # legacy: name -> its error
    creates_tables: bool = False  # SQL: has CREATE TABLE statements
    drops_tables: bool = False  # SQL: has DROP TABLE statements (pg_dump --clean)
    warnings: list[str] = field(default_factory=list)



def _without_credentials(source: str | None) -> str | None:
    return source.rsplit("@", 1)[-1] if source else None


def describe_legacy_json(path: Path) -> ForeignFile:
    """Header, tables and row counts of an old JSON backup (one streaming pass)."""
    from .legacy_json_reader import rows, scan

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
        kind=FileKind.LEGACY_JSON,
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
    from .script_splitter import CopyData, ScriptSplitter, Statement
    from .sql_script import parse_copy_target

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
        kind=FileKind.SQL_SCRIPT,
        description=description,
        alembic_revision=revision,
        tables=tables,
        creates_tables=creates,
        drops_tables=drops,
    )


def describe_foreign(path: Path, kind: FileKind) -> ForeignFile:
    return describe_legacy_json(path) if kind is FileKind.LEGACY_JSON else describe_sql_script(path)
