"""Restore a backup archive in ONE transaction: all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from ..archive import ArchiveReader
from ..dburl import DbUrl
from ..errors import ArchiveError, OpsError, RestoreFailed, RestoreRefused, UsageError
from .backup import CATALOG_MEMBER, SCHEMA_DUMP_MEMBER, SCHEMA_MEMBER
from .catalog import (
    SequenceValue,
    parse_json_member,
    qualified,
    quote_ident,
    sequences_from_json,
)
from .connection import connection
from .ddl_foreign_keys import foreign_keys_among
from .legacy_schema import LegacySchema
from .owners import check_roles
from .pg_errors import describe_pg_error
from .pg_tools import PgToolError
from .restore_policy import check_lock_capacity, check_restore_allowed, load_order
from .results import (
    Progress,
    ProgressCallback,
    RestoreMode,
    RestorePlan,
    RestoreResult,
    TableSummary,
)
from .schema_apply import RestoreOptions, SchemaScripts, apply, load_large_objects, prepare
from .selection import select_tables, unmatched_patterns
from .sql_text import statement_batches
from .target import (
    TargetState,
    lock_capacity,
    objects_in_schemas,
    read_target,
    relations_to_lock,
    row_counts,
)

Table = tuple[str, str]


class _Backup:
    """The parts of an archive a restore needs, read once.

    Since the pg_dump schema, ``schema.pgdump`` (pg_dump -Fc) holds the DDL and ``catalog.json``
    our side's sequences and schemas; older backups hold ``schema.json`` (statement lists)."""

    def __init__(self, reader: ArchiveReader) -> None:
        self.reader = reader
        self.manifest: dict[str, Any] = reader.manifest
        names = {m.name for m in reader.members}
        self.tables: dict[Table, dict[str, Any]] = {
            (t["schema"], t["name"]): t for t in self.manifest["tables"]
        }
        self.legacy: LegacySchema | None = None
        if SCHEMA_DUMP_MEMBER in names:
            catalog = parse_json_member(reader.read_member(CATALOG_MEMBER), CATALOG_MEMBER)
            self.sequences = sequences_from_json(catalog)
        else:
            self.legacy = LegacySchema.from_json(
                parse_json_member(reader.read_member(SCHEMA_MEMBER), SCHEMA_MEMBER))
            self.sequences = self.legacy.sequences

    @contextlib.contextmanager
    def pg_dump_archive(self) -> Iterator[Path | None]:
        """The pg_dump archive as a private file (pg_restore reads files), removed after."""
        if self.legacy is not None:
            yield None
            return
        work = Path(tempfile.mkdtemp(prefix="mmops-schema-"))
        try:
            path = work / "schema.pgdump"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in self.reader.iter_member(SCHEMA_DUMP_MEMBER):
                    out.write(chunk)
            yield path
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def columns(self) -> dict[Table, Sequence[str]]:
        return {k: tuple(v["columns"]) for k, v in self.tables.items()}


def _selected(backup: _Backup, patterns: Sequence[str] | None) -> list[Table] | None:
    if not patterns:
        return None
    keys = list(backup.tables)
    missing = unmatched_patterns(keys, patterns)
    if missing:
        raise UsageError(f"The backup holds no table matching {', '.join(map(repr, missing))}.")
    return select_tables(keys, patterns)


async def _plan(
    conn: asyncpg.Connection,
    backup: _Backup,
    mode: RestoreMode,
    force: bool,
    selected: list[Table] | None,
    scripts: SchemaScripts | None,
) -> tuple[RestorePlan, TargetState, list[Table]]:
    target = await read_target(conn)
    warnings = check_restore_allowed(
        mode=mode,
        target=target,
        backup_tables=backup.columns(),
        backup_revision=backup.manifest.get("alembic_revision"),
        force=force,
        selected=selected,
    )
    tables = selected if selected is not None else list(backup.tables)
    if mode is RestoreMode.DATA_ONLY:
        tables = [t for t in tables if t[1] != "alembic_version"]
        if backup.manifest.get("large_objects"):
            warnings.append(f"{backup.manifest['large_objects']} large object(s) in the backup "
                            "are not loaded by a data-only restore")
    if scripts is not None:
        warnings += await check_roles(conn, scripts)
    to_drop: list[str] = []
    live_rows = 0
    if mode is RestoreMode.REPLACE:
        schemas = sorted(set(backup.manifest.get("schemas") or []) & target.schemas)
        to_drop = await objects_in_schemas(conn, schemas)
        live_rows = await row_counts(conn, [t for t in target.table_columns if t[0] in schemas])
        locks = await relations_to_lock(conn, schemas=schemas) + _created(backup, scripts)
    elif mode is RestoreMode.DATA_ONLY:
        live_rows = await row_counts(conn, tables)
        locks = await relations_to_lock(conn, tables=tables)
    else:
        locks = _created(backup, scripts)
    check_lock_capacity(needed=locks, capacity=await lock_capacity(conn), database=target.database)
    plan = RestorePlan(
        mode=mode,
        database=target.database,
        backup_created_at=backup.manifest.get("created_at", "?"),
        backup_alembic_revision=backup.manifest.get("alembic_revision"),
        live_alembic_revision=target.alembic_revision,
        tables_to_load=[qualified(s, n) for s, n in tables],
        rows_to_load=sum(backup.tables[t]["rows"] for t in tables),
        objects_to_drop=to_drop,
        live_rows_replaced=live_rows,
        warnings=warnings,
    )
    return plan, target, tables


def _created(backup: _Backup, scripts: SchemaScripts | None) -> int:
    with_rows = sum(1 for t in backup.tables.values() if t["rows"])
    if scripts is not None:
        return scripts.relations() + 2 * with_rows
    assert backup.legacy is not None
    return backup.legacy.relations(with_rows)


@contextlib.asynccontextmanager
async def _schema_scripts(
    conn: asyncpg.Connection, backup: _Backup, mode: RestoreMode, no_owner: bool,
    no_privileges: bool,
) -> AsyncIterator[SchemaScripts | None]:
    """pg_restore's SQL for a create/replace restore of a pg_dump-schema backup, else None."""
    if mode is RestoreMode.DATA_ONLY or backup.legacy is not None:
        yield None
        return
    version = int(await conn.fetchval("SELECT pg_catalog.current_setting('server_version_num')"))
    options = RestoreOptions(no_owner, no_privileges, clean=mode is RestoreMode.REPLACE,
                             target_version=version)
    with backup.pg_dump_archive() as archive:
        assert archive is not None
        try:
            scripts = await prepare(archive, options)
        except PgToolError as exc:
            raise ArchiveError(f"The backup's schema (pg_dump archive) is unusable: {exc}") \
                from exc
        yield scripts


async def plan_restore(
    url: DbUrl,
    archive_path: Path,
    *,
    mode: RestoreMode = RestoreMode.CREATE,
    force: bool = False,
    tables: Sequence[str] | None = None,
    no_owner: bool = False,
    no_privileges: bool = False,
) -> RestorePlan:
    """What ``restore`` would do, without changing anything (raises RestoreRefused if refused)."""
    with ArchiveReader(archive_path) as reader:
        backup = _Backup(reader)
        selected = _selected(backup, tables)
        async with connection(url) as conn, _schema_scripts(
            conn, backup, mode, no_owner, no_privileges
        ) as scripts:
            plan, _, _ = await _plan(conn, backup, mode, force, selected, scripts)
            return plan


async def restore(
    url: DbUrl,
    archive_path: Path,
    *,
    mode: RestoreMode = RestoreMode.CREATE,
    lock_timeout: float = 30.0,
    force: bool = False,
    tables: Sequence[str] | None = None,
    confirm: Callable[[RestorePlan], bool] | None = None,
    progress: ProgressCallback | None = None,
    no_owner: bool = False,
    no_privileges: bool = False,
) -> RestoreResult:
    """Restore ``archive_path`` into the database at ``url`` in one transaction.

    ``confirm`` sees the plan before anything changes; returning False cancels.
    Any failure rolls back: the target is left exactly as it was. ``no_owner`` /
    ``no_privileges``: like pg_restore's, objects belong to the restoring user / no GRANTs.
    """
    started = time.monotonic()
    emit = progress or (lambda _p: None)
    with ArchiveReader(archive_path) as reader:
        backup = _Backup(reader)
        selected = _selected(backup, tables)
        async with connection(url, application_name="mmops restore") as conn, _schema_scripts(
            conn, backup, mode, no_owner, no_privileges
        ) as scripts:
            plan, target, keys = await _plan(conn, backup, mode, force, selected, scripts)
            if confirm is not None and not confirm(plan):
                raise RestoreRefused("Restore cancelled; nothing was changed.")
            try:
                async with conn.transaction():
                    loaded = await _restore_in_transaction(
                        conn, backup, plan, keys, target, scripts, lock_timeout, emit
                    )
            except OpsError as exc:
                if isinstance(exc, RestoreRefused):
                    raise
                raise RestoreFailed(
                    f"{exc} The restore was rolled back; database {plan.database!r} is unchanged."
                ) from exc
            except asyncpg.LockNotAvailableError as exc:
                raise RestoreFailed(
                    f"Could not lock a table within {lock_timeout:g}s (the database is busy); "
                    f"nothing was changed. Retry, or raise --lock-timeout."
                ) from exc
            except asyncpg.PostgresError as exc:
                raise RestoreFailed(
                    f"PostgreSQL refused the restore: {describe_pg_error(exc)}. The restore was "
                    f"rolled back; database {plan.database!r} is unchanged."
                ) from exc
    return RestoreResult(
        database=plan.database,
        mode=mode,
        tables=loaded,
        duration_s=round(time.monotonic() - started, 3),
        plan=plan,
    )


async def _restore_in_transaction(
    conn: asyncpg.Connection,
    backup: _Backup,
    plan: RestorePlan,
    keys: list[Table],
    target: TargetState,
    scripts: SchemaScripts | None,
    lock_timeout: float,
    emit: ProgressCallback,
) -> list[TableSummary]:
    partial = len([k for k in keys if k[1] != "alembic_version"]) < len(
        [t for t in backup.tables if t[1] != "alembic_version"]
    )
    await conn.execute(
        f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'; "
        "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0; "
        "SET LOCAL check_function_bodies = off; SET LOCAL client_min_messages = warning; "
        "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; "
        "SET LOCAL extra_float_digits = 3; SET LOCAL row_security = off; "
        "SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL search_path = ''"
    )
    if await conn.fetchval(_LZ4_AVAILABLE):
        # pglz dominates loading TOAST-sized text (58% of COPY in `make bench`); lz4 stores the
        # same values several times faster. Values are identical; only new rows' storage
        # differs, and columns with an explicit COMPRESSION keep it.
        await conn.execute("SET LOCAL default_toast_compression = 'lz4'")
    legacy = backup.legacy
    if plan.mode is RestoreMode.REPLACE:
        emit(Progress("schema", message="dropping the objects the backup replaces"))
        await _execute_all(conn, _drop_statements(backup, target))
    if plan.mode in (RestoreMode.CREATE, RestoreMode.REPLACE):
        await _execute_all(conn, _create_empty_schema_statements(backup, target, plan.mode))
        emit(Progress("schema", message="creating tables, types and functions"))
        if scripts is not None:
            await apply(conn, scripts, "pre-data")
        else:
            assert legacy is not None
            await _execute_all(conn, legacy.pre_data)
    else:
        keys = load_order(keys, target.references)
        await conn.execute("SET CONSTRAINTS ALL DEFERRED")
        if keys:
            await conn.execute(
                "TRUNCATE TABLE " + ", ".join(qualified(s, n) for s, n in keys)
            )
    if plan.mode is RestoreMode.DATA_ONLY:
        # Foreign keys among the reloaded tables may form cycles or point at their own table,
        # NOT DEFERRABLE: no load order satisfies them row by row. Set them aside for the load
        # and put them back exactly as they were (which validates every row at once).
        fkeys = await foreign_keys_among(conn, keys)
        # Reloading rows must not fire the app's triggers (audit rows, timestamps): disable
        # the user triggers of the loaded tables for the load, inside the transaction.
        triggers = await _enabled_user_triggers(conn, keys)
        await _execute_all(
            conn,
            [fk.drop_sql() for fk in fkeys]
            + [f"ALTER TABLE {t} DISABLE TRIGGER {quote_ident(n)}" for t, n, _m in triggers],
        )
        loaded = await _load_data(conn, backup, keys, emit)
        emit(Progress("post-data", message="checking foreign keys"))
        # Run the deferred foreign-key checks now: ALTER TABLE refuses pending trigger events.
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        await _execute_all(
            conn,
            [stmt for fk in fkeys for stmt in fk.add_sql()]
            + [
                f"ALTER TABLE {t} {_TRIGGER_STATE.get(m, 'ENABLE')} TRIGGER {quote_ident(n)}"
                for t, n, m in triggers
            ],
        )
        await _set_sequences(conn, backup.sequences, plan.mode, keys if partial else None)
        return loaded
    loaded = await _load_data(conn, backup, keys, emit)
    emit(Progress("post-data", message="building indexes, constraints and triggers"))
    if scripts is not None:
        # pg_dump's data section: sequence values, large objects, extension configuration rows.
        await apply(conn, scripts, "data")
        await load_large_objects(conn, scripts, emit)
        await apply(conn, scripts, "post-data")
    else:
        assert legacy is not None
        await _execute_all(conn, legacy.post_data)
        await _execute_all(conn, legacy.refresh)
        await _set_sequences(conn, backup.sequences, plan.mode, None)
    return loaded


_TRIGGER_STATE = {"A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


async def _execute_all(conn: asyncpg.Connection, statements: Sequence[str]) -> None:
    """Run DDL in batches of statements, one round trip each (thousands of tables would
    otherwise cost thousands of round trips)."""
    for script in statement_batches(statements):
        await conn.execute(script)


_LZ4_AVAILABLE = """SELECT 'lz4' = ANY(enumvals) FROM pg_catalog.pg_settings
                   WHERE name = 'default_toast_compression'"""


async def _enabled_user_triggers(
    conn: asyncpg.Connection, tables: list[Table]
) -> list[tuple[str, str, str]]:
    """(qualified table, trigger name, tgenabled) of enabled, non-internal triggers."""
    rows = await conn.fetch(
        """SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), t.tgname,
                  t.tgenabled::text
           FROM pg_catalog.pg_trigger t
           JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
             AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
           ORDER BY 1, 2""",
        [t[0] for t in tables],
        [t[1] for t in tables],
    )
    return [(r[0], r[1], r[2]) for r in rows]


def _drop_statements(backup: _Backup, target: TargetState) -> list[str]:
    """Drop the backup's schemas' objects. ``public`` is emptied, not dropped, so its owner,
    comment and grants stay as the database administrator left them."""
    stmts = []
    for name in sorted(set(backup.manifest.get("schemas") or []) & target.schemas):
        if name == "public":
            stmts.append(_EMPTY_PUBLIC)
        else:
            stmts.append(f"DROP SCHEMA {quote_ident(name)} CASCADE")
    return stmts


def _create_empty_schema_statements(
    backup: _Backup, target: TargetState, mode: RestoreMode
) -> list[str]:
    """In CREATE mode, empty schemas already in the target would make CREATE SCHEMA fail."""
    if mode is not RestoreMode.CREATE:
        return []
    return [
        f"DROP SCHEMA {quote_ident(name)}"
        for name in sorted(set(backup.manifest.get("schemas") or []) & target.schemas)
        if name != "public"
    ]


# Drops everything in public that is not part of an extension, relations first.
_EMPTY_PUBLIC = r"""
DO $mmops$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT format('DROP %s IF EXISTS %s CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END,
                  c.oid::regclass) AS stmt
    FROM pg_catalog.pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r','p','v','m','S','f')
      AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.refobjid <> c.oid
                      AND d.deptype IN ('e', 'i', 'a'))
    ORDER BY c.relkind = 'S', c.oid
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN
    SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) AS stmt
    FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
      -- 'i': a multirange's constructors belong to their type and go with it
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN
    SELECT format('DROP TYPE IF EXISTS %s CASCADE', t.oid::regtype) AS stmt
    FROM pg_catalog.pg_type t
    WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e','d','c','r','m')
      AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_type'::regclass
                      AND d.objid = t.oid AND d.deptype = 'e')
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN
    SELECT format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname) AS stmt
    FROM pg_catalog.pg_extension e
    WHERE e.extnamespace = 'public'::regnamespace
  LOOP EXECUTE r.stmt; END LOOP;
END
$mmops$
"""


async def _reporting(
    chunks: AsyncIterator[bytes], sent: Callable[[int], None]
) -> AsyncIterator[bytes]:
    """``chunks``, calling ``sent`` with each one's size once COPY has taken it."""
    async for chunk in chunks:
        yield chunk
        sent(len(chunk))


async def _member_chunks(reader: ArchiveReader, name: str) -> AsyncIterator[bytes]:
    """Decompress a member one chunk at a time (checksums verified), the next chunk in a worker
    thread while this one is sent, so the server does not wait for the client between chunks.
    A small member is decompressed right here: a thread hop would cost more."""
    it = reader.iter_member(name)
    if reader.member(name).raw_size <= _INLINE_BYTES:
        for chunk in it:
            if chunk:
                yield chunk
        return
    loop = asyncio.get_running_loop()
    sentinel = b""
    ahead = loop.run_in_executor(None, next, it, sentinel)
    try:
        while True:
            chunk = await ahead
            if chunk is sentinel:
                return
            ahead = loop.run_in_executor(None, next, it, sentinel)
            if chunk:
                yield chunk
    finally:
        if not ahead.done():
            # Stopped early (a failed COPY): let the read in flight end before the file closes.
            with contextlib.suppress(BaseException):
                await asyncio.shield(ahead)
        elif not ahead.cancelled():
            ahead.exception()  # retrieved: an abandoned read's error is not "never retrieved"


_INLINE_BYTES = 64 << 10


async def _load_data(
    conn: asyncpg.Connection, backup: _Backup, keys: list[Table], emit: ProgressCallback
) -> list[TableSummary]:
    total = sum(backup.tables[k]["raw_bytes"] for k in keys)
    done = 0
    summaries = []
    for key in keys:
        entry = backup.tables[key]
        label = qualified(*key)
        emit(Progress("data", done=done, total=total or None, item=label))
        columns = list(entry["columns"]) or None
        start, size = done, int(entry["raw_bytes"])

        def sent(n: int, label: str = label, end: int = start + size) -> None:
            nonlocal done  # what COPY has taken of this table, never past its listed size
            done = min(done + n, end)
            emit(Progress("data", done=done, total=total or None, item=label))

        try:
            status = await conn.copy_to_table(
                key[1],
                schema_name=key[0],
                columns=columns,
                source=_reporting(_member_chunks(backup.reader, entry["member"]), sent),
                format="text",
            )
        except ArchiveError as exc:
            raise ArchiveError(
                f"Backup member {entry['member']} ({label}) is unusable: {exc}"
            ) from exc
        except asyncpg.PostgresError as exc:
            # The row number is the COPY line: one line per row in COPY text format.
            raise RestoreFailed(
                f"PostgreSQL refused the data: {describe_pg_error(exc, table=label)}."
            ) from exc
        rows = int(status.split()[-1]) if status else 0
        if rows != entry["rows"]:
            raise RestoreFailed(
                f"Table {label} received {rows} rows but the backup recorded {entry['rows']}."
            )
        done = start + size
        emit(Progress("data", done=done, total=total or None, item=label))
        summaries.append(
            TableSummary(key[0], key[1], rows, entry["raw_bytes"], entry["stored_bytes"])
        )
    return summaries


async def _set_sequences(
    conn: asyncpg.Connection,
    sequences: Sequence[SequenceValue],
    mode: RestoreMode,
    only_tables: list[Table] | None,
) -> None:
    """Sequences end at the backup's values; a partial restore touches only the sequences
    owned by the tables it loaded (others keep counting where the live database is)."""
    owned: set[Table] | None = None
    if only_tables is not None:
        rows = await conn.fetch(
            """SELECT sn.nspname, s.relname
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
               JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
               JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
               WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
                 AND (tn.nspname, t.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
            [t[0] for t in only_tables],
            [t[1] for t in only_tables],
        )
        owned = {(r[0], r[1]) for r in rows}
    wanted = [s for s in sequences if owned is None or (s.schema, s.name) in owned]
    if mode is RestoreMode.DATA_ONLY and wanted:
        existing = {
            r[0]
            for r in await conn.fetch(
                "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
                [qualified(s.schema, s.name) for s in wanted],
            )
        }
        wanted = [s for s in wanted if qualified(s.schema, s.name) in existing]
    await _execute_all(conn, [s.setval_sql() for s in wanted])
