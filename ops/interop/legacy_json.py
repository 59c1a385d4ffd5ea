"""Restore the old scripts' JSON backups into a database whose schema already exists.

Steps, all inside the caller's single transaction (this module never commits):

1. ``scan`` the file once, streaming (``legacy_json_reader``): tables, row counts, keys, and the
   entries of tables whose backup failed (reported as warnings and skipped);
2. resolve every table and column against the catalog; unknown ones are refused (``force``:
   skipped with a warning); ``alembic_version`` is compared with the live revision, never loaded
   (different → refused unless ``force``);
3. refuse if tables outside the file that still hold rows reference the tables being replaced
   (``TRUNCATE`` would need ``CASCADE``); empty ones are truncated along;
4. ``TRUNCATE`` the tables, then load them in foreign-key order computed from ``pg_constraint``
   with text ``COPY`` (values checked and coerced by the target column types, see
   ``json_coercion``, then rendered by ``copy_text``);
5. set every sequence owned by a loaded column (serial / identity, what
   ``pg_get_serial_sequence`` returns) past the restored ids: ``setval(seq, max(id), true)``, or
   ``setval(seq, start, false)`` for an empty table.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from ..engine.copy_text import copy_line
from ..engine.pg_errors import describe_pg_error
from ..engine.restore_policy import load_order
from ..engine.results import Progress
from ..engine.sql_text import qualified, quote_ident
from ..errors import RestoreFailed, RestoreRefused
from .json_coercion import Coercer, CoercionError, ColumnType, coercer_for
from .legacy_json_reader import LegacyFile, TableEntry, looks_like_legacy_json, rows, scan

__all__ = [
    "LegacyRestoreResult",
    "LoadedTable",
    "SequenceSet",
    "looks_like_legacy_json",
    "restore_legacy_json",
]

ALEMBIC_TABLE = "alembic_version"
_PROGRESS_ROWS = 10_000
_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class LoadedTable:
    table: str  # schema-qualified
    rows: int


@dataclass(frozen=True)
class SequenceSet:
    sequence: str
    table: str
    column: str
    value: int
    is_called: bool


@dataclass(frozen=True)
class LegacyRestoreResult:
    path: str
    backup_timestamp: str | None
    source_database: str | None  # "host:port/db" as the old script wrote it, credentials removed
    alembic_revision_backup: str | None
    alembic_revision_live: str | None
    tables: tuple[LoadedTable, ...]
    sequences: tuple[SequenceSet, ...]
    skipped_tables: tuple[str, ...]
    warnings: tuple[str, ...]
    duration_s: float

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.total_rows
        return d


@dataclass(frozen=True)
class _Column:
    name: str
    type: ColumnType
    generated: bool


@dataclass
class _Target:
    entry: TableEntry
    oid: int
    schema: str
    name: str
    columns: list[_Column]  # the file's columns that will be loaded, in file order

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


# --------------------------------------------------------------------------- catalog


async def _resolve_table(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    """The table a file name refers to: exact name on the search_path, or ``schema.table``."""
    candidates = ['"' + name.replace('"', '""') + '"']
    if "." in name:
        schema, _, table = name.partition(".")
        candidates.append(qualified(schema, table) if schema else candidates[0])
    for candidate in candidates:
        row = await conn.fetchrow(
            "SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = pg_catalog.to_regclass($1)",
            candidate,
        )
        if row is not None and row["relkind"] in ("r", "p"):
            return row
    return None


async def _columns(conn: asyncpg.Connection, oid: int) -> dict[str, _Column]:
    rows_ = await conn.fetch(
        """
        SELECT a.attname, a.attgenerated <> '' AS generated,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS display,
               bt.typname AS base, bt.typcategory = 'A' AS is_array,
               coalesce(ebt.typname, et.typname) AS element
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        JOIN pg_catalog.pg_type bt
          ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
        LEFT JOIN pg_catalog.pg_type ebt ON ebt.oid = et.typbasetype AND et.typtype = 'd'
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        oid,
    )
    out = {}
    for r in rows_:
        base = r["element"] if r["is_array"] else r["base"]
        out[r["attname"]] = _Column(
            r["attname"], ColumnType(base, bool(r["is_array"]), r["display"]), r["generated"]
        )
    return out


async def _foreign_keys(conn: asyncpg.Connection, oids: list[int]) -> list[asyncpg.Record]:
    """Foreign keys touching ``oids``: child, parent (oid and qualified name), deferrable."""
    return list(
        await conn.fetch(
            """
            SELECT c.conrelid AS child, c.confrelid AS parent,
                   c.conrelid::pg_catalog.regclass::text AS child_name,
                   c.confrelid::pg_catalog.regclass::text AS parent_name,
                   c.condeferrable AS deferrable
            FROM pg_catalog.pg_constraint c
            WHERE c.contype = 'f' AND c.conparentid = 0
              AND (c.conrelid = ANY($1::oid[]) OR c.confrelid = ANY($1::oid[]))
            """,
            oids,
        )
    )


async def _owned_sequences(conn: asyncpg.Connection, oid: int) -> list[asyncpg.Record]:
    """Sequences owned by a column of table ``oid`` (serial: 'a', identity: 'i' in pg_depend)."""
    return list(
        await conn.fetch(
            """
            SELECT s.oid::pg_catalog.regclass::text AS seq, a.attname,
                   ps.seqstart, ps.seqincrement, ps.seqmin, ps.seqmax
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
            JOIN pg_catalog.pg_sequence ps ON ps.seqrelid = s.oid
            JOIN pg_catalog.pg_attribute a
              ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.refobjid = $1 AND d.deptype IN ('a', 'i')
            ORDER BY a.attnum
            """,
            oid,
        )
    )


# --------------------------------------------------------------------------- planning


async def _alembic_check(
    conn: asyncpg.Connection, path: Path, legacy: LegacyFile, force: bool, warnings: list[str]
) -> tuple[str | None, str | None]:
    entry = legacy.tables.get(ALEMBIC_TABLE)
    live_table = await _resolve_table(conn, ALEMBIC_TABLE)
    live: list[str] = []
    if live_table is not None:
        live = sorted(
            r[0]
            for r in await conn.fetch(
                f"SELECT version_num FROM {qualified(live_table['nspname'], ALEMBIC_TABLE)}"
            )
        )
    live_rev = ", ".join(live) or None
    if entry is None or entry.error is not None:
        why = "does not record" if entry is None else "failed to record"
        warnings.append(
            f"The backup {why} an alembic revision, so its schema could not be checked against "
            f"the database (at {live_rev or 'no revision'})."
        )
        return None, live_rev
    backup = sorted(str(r.get("version_num")) for r in rows(path, entry))
    backup_rev = ", ".join(backup) or None
    if backup != live:
        message = (
            f"The backup was taken at alembic revision {backup_rev or '(none)'} but the database "
            f"is at {live_rev or '(none)'}"
        )
        if not force:
            raise RestoreRefused(
                message + "; migrate the database to the backup's revision first, or pass "
                "--force to load the data anyway."
            )
        warnings.append(message + "; loaded anyway (--force).")
    return backup_rev, live_rev


async def _plan_targets(
    conn: asyncpg.Connection, legacy: LegacyFile, force: bool, warnings: list[str]
) -> tuple[list[_Target], list[str]]:
    targets: list[_Target] = []
    skipped: list[str] = []
    for entry in legacy.tables.values():
        if entry.name == ALEMBIC_TABLE:
            continue
        if entry.error is not None:
            skipped.append(entry.name)
            warnings.append(
                f"Table {entry.name} had failed in the old backup ({entry.error.strip()[:200]}); "
                "it was skipped and keeps its current rows."
            )
            continue
        found = await _resolve_table(conn, entry.name)
        if found is None:
            if not force:
                raise RestoreRefused(
                    f"The backup holds table {entry.name}, which does not exist in the database; "
                    "run the app's migrations first, or pass --force to skip it."
                )
            skipped.append(entry.name)
            warnings.append(f"Table {entry.name} does not exist in the database; skipped.")
            continue
        live_cols = await _columns(conn, found["oid"])
        cols: list[_Column] = []
        for key in entry.keys:
            col = live_cols.get(key)
            if col is None:
                if not force:
                    raise RestoreRefused(
                        f"The backup has column {entry.name}.{key}, which table "
                        f"{found['nspname']}.{found['relname']} does not have; migrate the "
                        "database to the backup's revision, or pass --force to skip the column."
                    )
                warnings.append(f"Column {entry.name}.{key} does not exist; its values skipped.")
                continue
            if col.generated:
                warnings.append(
                    f"Column {entry.name}.{key} is generated; the database computes it again."
                )
                continue
            cols.append(col)
        targets.append(_Target(entry, found["oid"], found["nspname"], found["relname"], cols))
    return targets, skipped


async def _truncate_set(
    conn: asyncpg.Connection, targets: list[_Target], fks: list[asyncpg.Record]
) -> list[str]:
    """Tables to truncate: the targets, plus referencing tables outside the file if empty."""
    loading = {t.oid for t in targets}
    outside: dict[int, tuple[str, str]] = {}
    for fk in fks:
        if fk["parent"] in loading and fk["child"] not in loading:
            outside.setdefault(fk["child"], (fk["child_name"], fk["parent_name"]))
    extra = []
    for child_name, parent_name in outside.values():
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {child_name})"):
            raise RestoreRefused(
                f"Table {child_name} is not restored (absent or failed in the backup) but "
                f"holds rows that reference {parent_name}, whose rows the restore replaces; "
                f"empty {child_name} first or restore a backup that includes it."
            )
        extra.append(child_name)
    return [t.qualified for t in targets] + extra


# --------------------------------------------------------------------------- loading


def _copy_chunks(
    path: Path, target: _Target, done: list[int], tick: Callable[[], None]
) -> Iterator[bytes]:
    """The table's rows as COPY text, in chunks of about ``_CHUNK_BYTES``, coerced on the way."""
    coercers: list[tuple[str, Coercer, str]] = [
        (c.name, coercer_for(c.type), c.type.display) for c in target.columns
    ]
    table = target.entry.name
    batch: list[str] = []
    size = 0
    for index, row in enumerate(rows(path, target.entry)):
        out = []
        for name, coerce, display in coercers:
            value = row.get(name)
            try:
                out.append(coerce(value))
            except (CoercionError, ValueError, TypeError, OverflowError) as exc:
                raise RestoreFailed(
                    f"Row {index} of table {table}, column {name}: its value (a JSON "
                    f"{type(value).__name__}, not shown) does not fit {display} ({exc}); the "
                    "restore was rolled back and nothing changed."
                ) from exc
        line = copy_line(out)
        batch.append(line)
        size += len(line)
        done[0] += 1
        if done[0] % _PROGRESS_ROWS == 0:
            tick()
        if size >= _CHUNK_BYTES:
            yield "".join(batch).encode("utf-8")
            batch, size = [], 0
    if batch:
        yield "".join(batch).encode("utf-8")


_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?")


async def _load(
    conn: asyncpg.Connection, path: Path, target: _Target, done: list[int], tick: Callable[[], None]
) -> int:
    if not target.columns:
        if target.entry.rows:
            raise RestoreRefused(
                f"Table {target.entry.name} has rows in the backup but none of its columns can "
                "be loaded."
            )
        return 0
    before = done[0]
    chunks = _copy_chunks(path, target, done, tick)

    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    try:
        # Text format: the server parses each value with its type's input function, so every
        # column type loads (enums, domains, intervals, extension types …).
        await conn.copy_to_table(
            target.name,
            schema_name=target.schema,
            columns=[c.name for c in target.columns],
            source=source(),
            format="text",
        )
    except asyncpg.PostgresError as exc:
        # The COPY context's line counts the file's rows (1-based); never a value of the row.
        m = _CONTEXT.search(getattr(exc, "context", None) or "")
        row = int(m.group(1)) if m else None
        raise RestoreFailed(
            f"Loading table {target.entry.name} failed: "
            f"{describe_pg_error(exc, table=target.entry.name, row=row)}; the restore was "
            "rolled back and nothing changed."
        ) from exc
    return done[0] - before


async def _set_sequences(conn: asyncpg.Connection, target: _Target) -> list[SequenceSet]:
    out = []
    for s in await _owned_sequences(conn, target.oid):
        col = quote_ident(s["attname"])
        agg = "max" if s["seqincrement"] > 0 else "min"
        edge = await conn.fetchval(f"SELECT {agg}({col})::bigint FROM {target.qualified}")
        in_range = edge is not None and s["seqmin"] <= edge <= s["seqmax"]
        value, is_called = (int(edge), True) if in_range else (int(s["seqstart"]), False)
        await conn.execute(
            "SELECT pg_catalog.setval($1::regclass, $2, $3)", s["seq"], value, is_called
        )
        out.append(SequenceSet(s["seq"], target.qualified, s["attname"], value, is_called))
    return out


async def restore_legacy_json(
    conn: asyncpg.Connection,
    path: Path,
    *,
    force: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> LegacyRestoreResult:
    """Load an old ``production_backup_*.json`` into the migrated database on ``conn``.

    The caller opens the one transaction (with lock_timeout) and commits; this function never
    commits. ``force`` accepts an alembic revision mismatch and skips unknown tables/columns
    (each reported in ``warnings``). Raises ``ArchiveError`` (damaged file), ``RestoreRefused``
    (nothing changed yet) or ``RestoreFailed`` (the caller's rollback undoes the partial load).
    """
    started = time.monotonic()
    path = Path(path)
    legacy = await asyncio.get_running_loop().run_in_executor(None, scan, path)
    warnings: list[str] = []
    backup_rev, live_rev = await _alembic_check(conn, path, legacy, force, warnings)
    targets, skipped = await _plan_targets(conn, legacy, force, warnings)

    fks = await _foreign_keys(conn, [t.oid for t in targets])
    by_oid = {t.oid: t for t in targets}
    refs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for fk in fks:
        if fk["child"] in by_oid and fk["parent"] in by_oid:
            child, parent = by_oid[fk["child"]], by_oid[fk["parent"]]
            refs.setdefault((child.schema, child.name), []).append((parent.schema, parent.name))
    ordered_keys = load_order([(t.schema, t.name) for t in targets], refs)
    by_key = {(t.schema, t.name): t for t in targets}
    ordered = [by_key[k] for k in ordered_keys]
    position = {k: i for i, k in enumerate(ordered_keys)}
    cyclic = any(position[p] > position[c] for c, ps in refs.items() for p in ps if p != c)

    to_truncate = await _truncate_set(conn, targets, fks)
    if to_truncate:
        await conn.execute("TRUNCATE TABLE " + ", ".join(to_truncate))
    if cyclic:
        # tables reference each other: only deferrable constraints can be satisfied, at the end
        await conn.execute("SET CONSTRAINTS ALL DEFERRED")

    total = sum(t.entry.rows for t in ordered)
    done = [0]
    current = [""]

    def tick() -> None:
        if progress is not None:
            progress(Progress(phase="data", done=done[0], total=total, item=current[0]))

    loaded: list[LoadedTable] = []
    sequences: list[SequenceSet] = []
    for target in ordered:
        current[0] = target.qualified
        tick()
        count = await _load(conn, path, target, done, tick)
        loaded.append(LoadedTable(f"{target.schema}.{target.name}", count))
    if cyclic:
        try:
            await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        except asyncpg.PostgresError as exc:
            raise RestoreFailed(
                f"The restored rows break a foreign key between tables that reference each "
                f"other ({describe_pg_error(exc)}); the restore was rolled back and nothing "
                "changed."
            ) from exc
    for target in ordered:
        sequences.extend(await _set_sequences(conn, target))
    tick()
    return LegacyRestoreResult(
        path=str(path),
        backup_timestamp=legacy.backup_timestamp,
        source_database=_without_credentials(legacy.database_url),
        alembic_revision_backup=backup_rev,
        alembic_revision_live=live_rev,
        tables=tuple(loaded),
        sequences=tuple(sequences),
        skipped_tables=tuple(skipped),
        warnings=tuple(warnings),
        duration_s=round(time.monotonic() - started, 3),
    )


def _without_credentials(url: str | None) -> str | None:
    if url is None:
        return None
    return url.rsplit("@", 1)[-1]
