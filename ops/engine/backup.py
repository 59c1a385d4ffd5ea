"""Take a consistent, parallel, compressed, checksummed logical backup."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from .._version import __version__
from ..archive import ArchiveWriter
from ..dburl import DbUrl
from ..errors import DatabaseError, UsageError
from .catalog import SchemaDump, TableDef, qualified, read_schema
from .connection import snapshot_connections
from .copy_out import copy_table_out
from .results import BackupResult, Progress, ProgressCallback, TableSummary
from .selection import select_tables, unmatched_patterns

SCHEMA_MEMBER = "schema.json"


def data_member_name(index: int) -> str:
    return f"data/{index:05d}"


def default_backup_name(database: str, now: dt.datetime | None = None) -> str:
    """``<db>-<UTC timestamp>.mmops`` — sortable, no characters a shell would mangle."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in database) or "db"
    return f"{safe}-{stamp}.mmops"


async def alembic_revision(conn: asyncpg.Connection, schema: SchemaDump) -> str | None:
    """The alembic revision(s) recorded in the database, or None when there is no table."""
    for t in schema.tables:
        if t.name == "alembic_version" and "version_num" in t.columns:
            rows = await conn.fetch(
                f"SELECT version_num FROM {t.qualified} ORDER BY version_num"
            )
            return ",".join(r[0] for r in rows) or None
    return None


def _filter_schema_tables(
    schema: SchemaDump, include: Sequence[str] | None, exclude: Sequence[str] | None
) -> list[TableDef]:
    pairs = [(t.schema, t.name) for t in schema.tables]
    missing = unmatched_patterns(pairs, include)
    if missing:
        raise UsageError(f"No table matches {', '.join(repr(m) for m in missing)}.")
    chosen = set(select_tables(pairs, include, exclude))
    return [t for t in schema.tables if (t.schema, t.name) in chosen]


async def backup(
    url: DbUrl,
    out_path: Path,
    *,
    jobs: int = 2,
    tables: Sequence[str] | None = None,
    exclude_tables: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    level: int = 3,
) -> BackupResult:
    """Dump the database at ``url`` into the archive ``out_path`` (written atomically, 0600)."""
    if jobs < 1:
        raise UsageError("--jobs must be at least 1.")
    started = time.monotonic()
    emit = progress or (lambda _p: None)
    created_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    async with snapshot_connections(url, jobs) as conns:
        leader = conns[0]
        emit(Progress("schema", message="reading the catalogs"))
        schema = await read_schema(leader)
        if schema.large_objects:
            raise UsageError(
                f"The database holds {schema.large_objects} large object(s), which this tool "
                "does not back up; store them as bytea or use pg_dump for this database."
            )
        chosen = _filter_schema_tables(schema, tables, exclude_tables)
        await _lock_tables(leader, chosen)
        server_version = str(await leader.fetchval("SHOW server_version"))
        revision = await alembic_revision(leader, schema)
        total_bytes = sum(t.approx_bytes for t in chosen)

        with ArchiveWriter(out_path, level=level) as writer:
            writer.add_member(
                SCHEMA_MEMBER, "schema", json.dumps(schema.to_json(), sort_keys=True).encode()
            )
            summaries = await _copy_all(conns, chosen, writer, emit, total_bytes)
            manifest_tables = [
                {
                    "schema": t.schema,
                    "name": t.name,
                    "member": member,
                    "rows": s.rows,
                    "raw_bytes": s.bytes_raw,
                    "stored_bytes": s.bytes_stored,
                    "columns": list(t.columns),
                }
                for t, (member, s) in zip(chosen, summaries, strict=True)
            ]
            meta = {
                "tool": "markdown-manager-ops",
                "tool_version": __version__,
                "created_at": created_at,
                "server_version": server_version,
                "database": url.database,
                "alembic_revision": revision,
                "schemas": list(schema.schemas),
                "tables": manifest_tables,
                "partial": bool(tables or exclude_tables),
                "sequences": len(schema.sequences),
            }
            final = writer.commit(meta)
            size = final.stat().st_size
    return BackupResult(
        path=str(final),
        database=url.database,
        server_version=server_version,
        alembic_revision=revision,
        tables=[s for _m, s in summaries],
        size_bytes=size,
        duration_s=round(time.monotonic() - started, 3),
        created_at=created_at,
    )


async def _lock_tables(conn: asyncpg.Connection, tables: list[TableDef]) -> None:
    """ACCESS SHARE locks (like pg_dump) so no DDL can change a table before it is copied."""
    for t in tables:
        try:
            await conn.execute(f"LOCK TABLE {t.qualified} IN ACCESS SHARE MODE")
        except asyncpg.PostgresError as exc:
            raise DatabaseError(f"Could not lock {qualified(t.schema, t.name)}: {exc}") from exc


async def _copy_all(
    conns: list[asyncpg.Connection],
    tables: list[TableDef],
    writer: ArchiveWriter,
    emit: ProgressCallback,
    total_bytes: int,
) -> list[tuple[str, TableSummary]]:
    """Largest tables first over all connections; results in the order of ``tables``."""
    order = sorted(range(len(tables)), key=lambda i: -tables[i].approx_bytes)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in order:
        queue.put_nowait(i)
    results: dict[int, tuple[str, TableSummary]] = {}
    done_bytes = 0

    def on_bytes(n: int) -> None:
        nonlocal done_bytes
        done_bytes += n
        emit(Progress("data", done=done_bytes, total=total_bytes or None))

    async def worker(conn: asyncpg.Connection) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            table = tables[i]
            name = data_member_name(i)
            member = writer.open_member(name, "table-data")
            emit(Progress("data", done=done_bytes, total=total_bytes or None, item=table.qualified))
            try:
                rows, info = await copy_table_out(conn, table, member, on_bytes)
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"Reading {table.qualified} failed: {exc}") from exc
            results[i] = (
                name,
                TableSummary(table.schema, table.name, rows, info.raw_size, info.stored_size),
            )

    tasks = [asyncio.ensure_future(worker(c)) for c in conns]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [results[i] for i in range(len(tables))]
