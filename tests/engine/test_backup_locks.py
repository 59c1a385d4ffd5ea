"""A backup must not take the application down (real PostgreSQL, real concurrent sessions).

A backup holds ACCESS SHARE locks on its tables until it ends. A migration's ALTER TABLE queues
behind them, and every app query on that table queues behind the ALTER. The backup notices such
waiters and gives way; and it does not wait forever behind a lock someone else holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from ops.dburl import DbUrl
from ops.engine.backup import backup
from ops.errors import BackupYielded, DatabaseError

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE public.a_users (id int PRIMARY KEY, email text);
INSERT INTO public.a_users SELECT g, 'u' || g FROM generate_series(1, 100) g;
CREATE TABLE public.b_documents (id int PRIMARY KEY, body text);
INSERT INTO public.b_documents SELECT g, repeat('x', 50) FROM generate_series(1, 100) g;
"""


async def _connect(url: DbUrl) -> asyncpg.Connection:
    return await asyncpg.connect(**url.connect_kwargs())


async def _wait_until(url: DbUrl, sql: str, *args: object) -> None:
    """Poll a condition from a fresh autocommit session (pg_stat_activity is a per-transaction
    snapshot); no sleeps standing in for ordering."""
    conn = await _connect(url)
    try:
        for _ in range(1200):
            if await conn.fetchval(sql, *args):
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"condition never became true: {sql} {args}")


_WAITING_ON = """SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE NOT l.granted AND l.relation = $1::regclass AND a.application_name = $2)"""


def test_backup_yields_to_a_waiting_alter_table_and_the_queued_reads(pg15, make_db, tmp_path):
    url = make_db(pg15)
    pg15.psql(SCHEMA, url.database)
    out = tmp_path / "out"
    out.mkdir()

    async def scenario() -> tuple[BaseException | None, int, str]:
        holder = await _connect(url)  # keeps the backup busy: it must wait to lock b_documents
        migration = await _connect(url)
        app = await _connect(url)
        await migration.execute("SET application_name = 'migration'")
        await app.execute("SET application_name = 'app'")
        try:
            await holder.execute("BEGIN; LOCK TABLE public.b_documents IN ACCESS EXCLUSIVE MODE")
            job = asyncio.ensure_future(
                backup(url, out / "b.mmops", jobs=1, yield_after=0.5, lock_timeout=120)
            )
            # The backup holds a_users (locked first) and waits for b_documents.
            await _wait_until(url, _WAITING_ON, "public.b_documents", "mmops backup")
            alter = asyncio.ensure_future(
                migration.execute("ALTER TABLE public.a_users ADD COLUMN nickname text")
            )
            await _wait_until(url, _WAITING_ON, "public.a_users", "migration")
            read = asyncio.ensure_future(app.fetchval("SELECT count(*) FROM public.a_users"))
            await _wait_until(url, _WAITING_ON, "public.a_users", "app")
            try:
                await job
                error: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - inspected by the test
                error = exc
            # The backup gave way while the holder still holds b_documents: the migration and
            # the app's read both go through.
            await alter
            count = await read
            columns = await app.fetchval(
                "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute "
                "WHERE attrelid = 'public.a_users'::regclass AND attnum > 0"
            )
            await holder.execute("ROLLBACK")
            return error, count, columns
        finally:
            for c in (holder, migration, app):
                await c.close()

    error, count, columns = asyncio.run(scenario())
    assert isinstance(error, BackupYielded), repr(error)
    assert error.exit_code == 13
    message = str(error)
    assert "public.a_users" in message and "AccessExclusiveLock" in message
    assert "nothing was changed" in message and "Retry" in message
    assert count == 100
    assert columns == "id,email,nickname"
    assert list(out.iterdir()) == []  # no partial file left behind


def test_backup_never_yields_when_told_so_and_finishes(pg15, make_db, tmp_path):
    url = make_db(pg15)
    pg15.psql(SCHEMA, url.database)

    async def scenario() -> tuple[Path, str]:
        migration = await _connect(url)
        await migration.execute("SET application_name = 'migration'")
        holder = await _connect(url)
        try:
            await holder.execute("BEGIN; LOCK TABLE public.b_documents IN ACCESS EXCLUSIVE MODE")
            job = asyncio.ensure_future(
                backup(url, tmp_path / "b.mmops", jobs=1, yield_after=0, lock_timeout=120)
            )
            await _wait_until(url, _WAITING_ON, "public.b_documents", "mmops backup")
            alter = asyncio.ensure_future(
                migration.execute("ALTER TABLE public.a_users ADD COLUMN nickname text")
            )
            await _wait_until(url, _WAITING_ON, "public.a_users", "migration")
            await holder.execute("ROLLBACK")  # now the backup can go on, and it does
            result = await job
            await alter
            return Path(result.path), result.tables[0].qualified
        finally:
            await migration.close()
            await holder.close()

    path, first = asyncio.run(scenario())
    assert path.exists() and first == "public.a_users"


def test_backup_behind_a_held_exclusive_lock_times_out_naming_the_table(pg15, make_db, tmp_path):
    url = make_db(pg15)
    pg15.psql(SCHEMA, url.database)
    out = tmp_path / "out"
    out.mkdir()

    async def scenario() -> BaseException | None:
        holder = await _connect(url)
        try:
            await holder.execute("BEGIN; LOCK TABLE public.b_documents IN ACCESS EXCLUSIVE MODE")
            try:
                await backup(url, out / "b.mmops", lock_timeout=0.3)
            except BaseException as exc:  # noqa: BLE001 - inspected by the test
                return exc
            return None
        finally:
            await holder.close()

    error = asyncio.run(scenario())
    assert isinstance(error, DatabaseError) and not isinstance(error, BackupYielded), repr(error)
    assert "public.b_documents" in str(error)
    assert "0.3s" in str(error)
    assert list(out.iterdir()) == []
