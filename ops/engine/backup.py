"""Take a consistent, parallel, compressed, checksummed logical backup."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import shutil
import tempfile
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from .._version import __version__
from ..archive import ArchiveWriter
from ..dburl import DbUrl
from ..errors import BackupYielded, DatabaseError, UsageError
from .catalog import Catalog, TableDef, read_catalog, read_tables
from .connection import connection, snapshot_connections
from .copy_out import copy_table_out
from .pg_errors import describe_pg_error
from .pg_tools import PgToolError, dump_schema, pg_dump_version
from .results import BackupResult, Progress, ProgressCallback, TableSummary
from .selection import select_tables, unmatched_patterns
from .sql_text import quote_literal

SCHEMA_MEMBER = "schema.json"  # backups before the pg_dump schema (format 1 schema)
SCHEMA_DUMP_MEMBER = "schema.pgdump"  # pg_dump -Fc: the schema, large objects, sequences
CATALOG_MEMBER = "catalog.json"  # schemas, sequence values, extensions (our side)


def data_member_name(index: int) -> str:
    return f"data/{index:05d}"


def safe_database_name(database: str) -> str:
    """The database's name as backup file names carry it (and repository listings parse it)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in database) or "db"


def default_backup_name(
    database: str, now: dt.datetime | None = None, *, precise: bool = False
) -> str:
    """``<db>-<UTC timestamp>.mmops`` — sortable, no characters a shell would mangle.
    ``precise`` adds microseconds, for a second backup within the same second."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime(
        "%Y%m%dT%H%M%S%fZ" if precise else "%Y%m%dT%H%M%SZ")
    return f"{safe_database_name(database)}-{stamp}.mmops"


async def alembic_revision(conn: asyncpg.Connection, tables: Sequence[TableDef]) -> str | None:
    """The alembic revision(s) recorded in the database, or None when there is no table."""
    for t in tables:
        if t.name == "alembic_version" and "version_num" in t.columns:
            rows = await conn.fetch(
                f"SELECT version_num FROM {t.qualified} ORDER BY version_num"
            )
            return ",".join(r[0] for r in rows) or None
    return None


def _filter_tables(
    found: Sequence[TableDef], include: Sequence[str] | None, exclude: Sequence[str] | None
) -> list[TableDef]:
    pairs = [(t.schema, t.name) for t in found]
    missing = unmatched_patterns(pairs, include)
    if missing:
        raise UsageError(f"No table matches {', '.join(repr(m) for m in missing)}.")
    chosen = set(select_tables(pairs, include, exclude))
    return [t for t in found if (t.schema, t.name) in chosen]


async def backup(
    url: DbUrl,
    out_path: Path,
    *,
    jobs: int = 2,
    tables: Sequence[str] | None = None,
    exclude_tables: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    level: int = 3,
    yield_after: float | None = 5.0,
    lock_timeout: float = 30.0,
) -> BackupResult:
    """Dump the database at ``url`` into the archive ``out_path`` (written atomically, 0600).

    The backup holds ACCESS SHARE locks on its tables until it ends, so an ALTER TABLE queues
    behind it and every query on that table queues behind the ALTER. When another session has
    waited ``yield_after`` seconds for a lock the backup holds, the backup stops, removes its
    partial file and raises BackupYielded (the caller may retry); ``0``/``None`` never yields.
    ``lock_timeout`` bounds how long the backup itself waits for a lock someone else holds.
    """
    if jobs < 1:
        raise UsageError("--jobs must be at least 1.")
    started = time.monotonic()
    emit = progress or (lambda _p: None)
    async with snapshot_connections(url, jobs, lock_timeout=lock_timeout) as conns:
        work = _dump(conns, url, out_path, tables, exclude_tables, emit, level, lock_timeout)
        if not yield_after or yield_after <= 0:
            final, server_version, revision, created_at, summaries, digest = await work
        else:
            async with connection(url, application_name="mmops backup watch") as watch:
                final, server_version, revision, created_at, summaries, digest = await _yielding(
                    work, watch, [c.get_server_pid() for c in conns], yield_after
                )
        size = final.stat().st_size
    return BackupResult(
        path=str(final),
        database=url.database,
        server_version=server_version,
        alembic_revision=revision,
        tables=summaries,
        size_bytes=size,
        duration_s=round(time.monotonic() - started, 3),
        created_at=created_at,
        file_sha256=digest,
    )


_Dumped = tuple[Path, str, str | None, str, list[TableSummary], str]


async def _dump(
    conns: list[asyncpg.Connection],
    url: DbUrl,
    out_path: Path,
    tables: Sequence[str] | None,
    exclude_tables: Sequence[str] | None,
    emit: ProgressCallback,
    level: int,
    lock_timeout: float,
) -> _Dumped:
    created_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    leader = conns[0]
    emit(Progress("schema", message="reading the catalogs"))
    found = await read_tables(leader)
    chosen = _filter_tables(found, tables, exclude_tables)
    # pg_dump writes the schema (and what only it carries: large objects, sequence values,
    # extension configuration rows, materialized view refreshes) from the same snapshot,
    # beside our COPY; every table's rows stay ours, selected or not. It starts before we
    # lock: it takes its own ACCESS SHARE locks first thing, and a lock request of its made
    # after an ALTER TABLE queued behind ours would wait for us while we wait for it.
    snapshot = str(await leader.fetchval("SELECT pg_catalog.pg_export_snapshot()"))
    staging = Path(tempfile.mkdtemp(prefix="mmops-schema-"))
    schema_file = staging / "schema.pgdump"
    locked = await _user_tables(leader)
    dumper_name = f"mmops pg_dump {snapshot}"
    dumper = asyncio.ensure_future(
        dump_schema(url, snapshot, schema_file, exclude_data=[t.key for t in found],
                    lock_wait_timeout=lock_timeout, application_name=dumper_name)
    )
    try:
        # pg_dump takes its own ACCESS SHARE locks, table by table in oid order. We lock in
        # the same order right behind it, so a DDL statement arriving meanwhile queues behind
        # both (a lock request of pg_dump's made after an ALTER TABLE queued behind ours would
        # wait for us while we wait for it). Whatever slipped in before our locks is caught by
        # _check_unchanged: a table changed after the snapshot is never copied.
        await _wait_for_first_lock(leader, dumper, dumper_name, [oid for oid, _ in locked])
        emit(Progress("schema", message="locking the tables"))
        await _lock_tables(leader, [name for _, name in locked], lock_timeout)
        await _check_unchanged(url, leader, [oid for oid, _ in locked])
        with ArchiveWriter(out_path, level=level) as writer:
            copier = _Copier(writer, emit, lock_timeout)
            copier.start(chosen, conns[1:])
            try:
                catalog = await read_catalog(leader, tuple(chosen))
                server_version = str(await leader.fetchval("SHOW server_version"))
                # COPY writes timestamptz in the session's TimeZone: a test restore re-reads
                # in the same one.
                timezone = str(await leader.fetchval("SHOW TimeZone"))
                revision = await alembic_revision(leader, found)
                summaries = await copier.finish(leader)
                emit(Progress("schema", message="waiting for pg_dump's schema"))
                await dumper
                version = await pg_dump_version()
                await asyncio.get_running_loop().run_in_executor(
                    None, _add_file_member, writer, SCHEMA_DUMP_MEMBER, schema_file)
            except PgToolError as exc:
                raise DatabaseError(f"{exc} (nothing was written).") from exc
            finally:
                await copier.stop()
            final = _finish(writer, url, catalog, chosen, summaries, tables, exclude_tables,
                            created_at, server_version, timezone, revision, version)
    finally:
        if not dumper.done():
            # A killed pg_dump leaves its server session waiting for a lock (holding the
            # ones it has) until that wait ends: end the session first.
            await _end_sessions(url, dumper_name)
        dumper.cancel()
        await asyncio.gather(dumper, return_exceptions=True)
        shutil.rmtree(staging, ignore_errors=True)
    return final, server_version, revision, created_at, [s for _m, s in summaries], writer.sha256


def _finish(
    writer: ArchiveWriter, url: DbUrl, catalog: Catalog, chosen: list[TableDef],
    summaries: list[tuple[str, TableSummary]], tables: Sequence[str] | None,
    exclude_tables: Sequence[str] | None, created_at: str, server_version: str, timezone: str,
    revision: str | None, pg_dump: str,
) -> Path:
    """Write our catalog member and the manifest; the file gets its final name."""
    writer.add_member(
        CATALOG_MEMBER, "catalog", json.dumps(catalog.to_json(), sort_keys=True).encode()
    )
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
        "timezone": timezone,
        "database": url.database,
        "alembic_revision": revision,
        "schemas": list(catalog.schemas),
        "tables": manifest_tables,
        "partial": bool(tables or exclude_tables),
        "sequences": len(catalog.sequences),
        "schema_format": "pg_dump",
        "pg_dump_version": pg_dump,
        "large_objects": catalog.large_objects,
    }
    return writer.commit(meta)


def _add_file_member(writer: ArchiveWriter, name: str, path: Path) -> None:
    member = writer.open_member(name, "pg_dump")
    with open(path, "rb") as f:
        while chunk := f.read(member.chunk_size):
            member.write(chunk)
    member.close()


# Sessions (not ours) that have waited at least $2 seconds for a lock one of our sessions
# ($1) holds or is queued ahead of them for. pg_blocking_pids() briefly locks the lock
# manager, so it only runs for the (few) lock requests that are waiting.
_BLOCKED = """
WITH waiting AS MATERIALIZED (
  SELECT l.pid, l.mode, l.relation, l.locktype, l.waitstart
  FROM pg_catalog.pg_locks l
  WHERE NOT l.granted AND l.pid <> ALL($1::int[])
    AND l.waitstart <= pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $2))
SELECT w.pid, w.mode, w.locktype,
       (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = w.relation) AS rel,
       extract(epoch FROM pg_catalog.clock_timestamp() - w.waitstart)::float8 AS waited
FROM waiting w
WHERE pg_catalog.pg_blocking_pids(w.pid) && $1::int[]
ORDER BY w.waitstart
LIMIT 1
"""


async def _first_blocked(
    watch: asyncpg.Connection, pids: list[int], yield_after: float
) -> asyncpg.Record:
    """Poll until a session has waited ``yield_after`` seconds behind one of ``pids``."""
    interval = min(0.5, max(0.05, yield_after / 4))
    while True:
        row = await watch.fetchrow(_BLOCKED, pids, float(yield_after))
        if row is not None:
            return row
        await asyncio.sleep(interval)


async def _yielding(
    work: Coroutine[Any, Any, _Dumped],
    watch: asyncpg.Connection,
    pids: list[int],
    yield_after: float,
) -> _Dumped:
    """Run ``work``; stop it and raise BackupYielded once it blocks another session too long."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_first_blocked(watch, pids, yield_after))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and watcher.exception() is None:
            row = watcher.result()
            # Cancel our own statements server-side first: a backend waiting for a lock of
            # its own keeps holding the locks it has until its statement ends.
            with contextlib.suppress(asyncpg.PostgresError):
                await watch.execute(
                    "SELECT pg_catalog.pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid",
                    pids,
                )
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            what = f"table {row['rel']}" if row["rel"] else f"a {row['locktype']}"
            raise BackupYielded(
                f"The backup stopped to let another session through: session {row['pid']} "
                f"had waited {row['waited']:.1f}s for a lock ({row['mode']}) on {what} that "
                "the backup held (an ALTER TABLE or a migration, with the app's queries queued "
                "behind it); no backup file was left and nothing was changed.",
                hint="Retry the backup once that session is done.",
            )
        return await task  # the watch failing must not fail the backup
    finally:
        for t in (task, watcher):
            t.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


_USER_TABLES = """
SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.oid
"""


async def _user_tables(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    """(oid, qualified name) of the tables to lock, in pg_dump's order (oid)."""
    return [(int(r[0]), r[1]) for r in await conn.fetch(_USER_TABLES)]


async def _wait_for_first_lock(
    conn: asyncpg.Connection, dumper: asyncio.Future[None], name: str, oids: list[int]
) -> None:
    """Return once pg_dump's session holds or awaits a lock on one of our tables (or ended)."""
    if not oids:
        return
    while not dumper.done():
        # pg_stat_activity is read once per transaction unless its snapshot is cleared.
        await conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
        if await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                              JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                              WHERE a.application_name = $1 AND l.locktype = 'relation'
                                AND l.relation = ANY($2::oid[]))""",
            name, oids,
        ):
            return
        await asyncio.sleep(0.01)
    if dumper.exception() is not None:
        dumper.result()


async def _end_sessions(url: DbUrl, application_name: str) -> None:
    with contextlib.suppress(Exception):
        async with connection(url, application_name="mmops backup cleanup") as conn:
            await conn.execute(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                "WHERE application_name = $1 AND pid <> pg_catalog.pg_backend_pid()",
                application_name)


_TABLE_STATE = """SELECT c.oid, c.xmin::text AS x, c.relfilenode
                  FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[])"""


async def _check_unchanged(url: DbUrl, leader: asyncpg.Connection, oids: list[int]) -> None:
    """Refuse to copy a table that changed after the snapshot (an ALTER TABLE, TRUNCATE or
    rewrite that committed before our lock was granted): its rows would not be the
    snapshot's. pg_class as the snapshot saw it against pg_class as it is now."""
    if not oids:
        return
    then = {r["oid"]: (r["x"], r["relfilenode"]) for r in await leader.fetch(_TABLE_STATE, oids)}
    async with connection(url, application_name="mmops backup check") as now_conn:
        now = {r["oid"]: (r["x"], r["relfilenode"])
               for r in await now_conn.fetch(_TABLE_STATE, oids)}
    changed = sorted(oid for oid in oids if then.get(oid) != now.get(oid))
    if changed:
        names = await leader.fetch(
            "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[])",
            changed)
        raise BackupYielded(
            "The backup stopped: table(s) " + ", ".join(r[0] for r in names) + " changed "
            "(ALTER TABLE, TRUNCATE) between the backup's snapshot and its locks, so their "
            "rows could not be read consistently; no backup file was left and nothing was "
            "changed.",
            hint="Retry the backup.",
        )


async def _lock_tables(conn: asyncpg.Connection, tables: list[str], timeout: float) -> None:
    """ACCESS SHARE locks (like pg_dump) so no DDL can change a table while it is dumped.

    One round trip: a DO block locks them one by one and, on a lock timeout, names the table
    it waited for (in the error's table field).
    """
    if not tables:
        return
    array = "ARRAY[" + ", ".join(quote_literal(t) for t in tables) + "]::text[]"
    try:
        await conn.execute(
            "DO $mmops$ DECLARE t text; BEGIN\n"
            f"  FOREACH t IN ARRAY {array} LOOP\n"
            "    EXECUTE 'LOCK TABLE ' || t || ' IN ACCESS SHARE MODE';\n"
            "  END LOOP;\n"
            "EXCEPTION WHEN lock_not_available THEN\n"
            "  RAISE EXCEPTION USING ERRCODE = 'lock_not_available', TABLE = t,\n"
            "    MESSAGE = 'lock timeout';\n"
            "END $mmops$"
        )
    except asyncpg.LockNotAvailableError as exc:
        table = getattr(exc, "table_name", None) or "?"
        raise DatabaseError(
            f"The backup waited {timeout:g}s for a lock on table {table}, which another "
            "session holds exclusively (an ALTER TABLE, VACUUM FULL, a migration); "
            "nothing was written.",
            hint="Retry when that session is done, or raise the lock timeout.",
        ) from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"Could not lock the tables: {describe_pg_error(exc)}.") from exc


class _Copier:
    """COPY the chosen tables, largest first, over the connections given to ``start`` and,
    once it is done with the catalogs, the leader's (``finish``)."""

    def __init__(self, writer: ArchiveWriter, emit: ProgressCallback, lock_timeout: float) -> None:
        self.writer = writer
        self.emit = emit
        self.lock_timeout = lock_timeout
        self.tables: list[TableDef] = []
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.results: dict[int, tuple[str, TableSummary]] = {}
        self.tasks: list[asyncio.Future[None]] = []
        self.done_bytes = 0
        self.total_bytes = 0
        # Per table: the size expected (pg_class.relpages: stale statistics can be far off),
        # replaced by what was copied once that is more, or once the table is done — so the
        # total grows with a table bigger than its statistics and done never exceeds it.
        self.expected: list[int] = []
        self.copied: list[int] = []

    def start(self, tables: list[TableDef], conns: Sequence[asyncpg.Connection]) -> None:
        self.tables = tables
        self.expected = [t.approx_bytes for t in tables]
        self.copied = [0] * len(tables)
        self.total_bytes = sum(self.expected)
        for i in sorted(range(len(tables)), key=lambda i: -tables[i].approx_bytes):
            self.queue.put_nowait(i)
        self.tasks = [asyncio.ensure_future(self._worker(c)) for c in conns]

    async def finish(self, leader: asyncpg.Connection) -> list[tuple[str, TableSummary]]:
        """The leader joins in; results in the order of the tables."""
        self.tasks.append(asyncio.ensure_future(self._worker(leader)))
        await asyncio.gather(*self.tasks)
        return [self.results[i] for i in range(len(self.tables))]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _on_bytes(self, i: int, n: int) -> None:
        self.done_bytes += n
        self.copied[i] += n
        if self.copied[i] > self.expected[i]:
            self._expect(i, self.copied[i])
        self.emit(Progress("data", done=self.done_bytes, total=self.total_bytes or None,
                           item=self.tables[i].qualified))

    def _expect(self, i: int, size: int) -> None:
        self.total_bytes += size - self.expected[i]
        self.expected[i] = size

    async def _worker(self, conn: asyncpg.Connection) -> None:
        while True:
            try:
                i = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            table = self.tables[i]
            name = data_member_name(i)
            member = self.writer.open_member(name, "table-data")
            self.emit(Progress("data", done=self.done_bytes, total=self.total_bytes or None,
                               item=table.qualified))
            try:
                rows, info = await copy_table_out(
                    conn, table, member, functools.partial(self._on_bytes, i))
            except asyncpg.LockNotAvailableError as exc:
                raise DatabaseError(
                    f"The backup waited {self.lock_timeout:g}s to read table {table.qualified}, "
                    "behind a session waiting for an exclusive lock on it; nothing was written.",
                    hint="Retry when that session is done, or raise the lock timeout.",
                ) from exc
            except asyncpg.PostgresError as exc:
                raise DatabaseError(
                    f"Reading table {table.qualified} failed: {describe_pg_error(exc)}."
                ) from exc
            self._expect(i, self.copied[i])  # done: its real size (the total may shrink)
            self.results[i] = (
                name,
                TableSummary(table.schema, table.name, rows, info.raw_size, info.stored_size),
            )
