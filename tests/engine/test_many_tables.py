"""3,000 small tables: a one-transaction restore needs a lock per table, index and TOAST table.

On a server with the default max_locks_per_transaction the restore is refused before anything
changes, with the number of locks needed, the capacity and the setting to raise. When
PostgreSQL itself runs out of lock space, its hint reaches the operator.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import asyncpg
import pytest

from ops.engine.backup import backup
from ops.engine.pg_errors import describe_pg_error
from ops.engine.restore import plan_restore, restore
from ops.engine.results import RestoreMode
from ops.errors import RestoreRefused
from ops.sandbox.postgres import PostgresServer
from tests.conftest import require
from tests.fidelity import data_digest, schema_text

pytestmark = pytest.mark.postgres

TABLES = 3000


def _many_tables_sql(n: int) -> str:
    # Each table in its own transaction (psql autocommit): creating them all at once would
    # itself need more locks than the server has.
    return "\n".join(
        f"CREATE TABLE public.t{i:04d} (id int PRIMARY KEY, label text NOT NULL);"
        f"CREATE INDEX t{i:04d}_label ON public.t{i:04d} (label);"
        f"INSERT INTO public.t{i:04d} VALUES (1, 'a'), (2, 'b'), (3, 'c');"
        for i in range(n)
    )


def test_restore_of_3000_tables_is_refused_before_anything_changes(pg15, make_db, tmp_path):
    src = make_db(pg15)
    pg15.psql(_many_tables_sql(TABLES), src.database)
    settings = pg15.psql(
        "SELECT current_setting('max_locks_per_transaction'), current_setting('max_connections'),"
        " current_setting('max_prepared_transactions')"
    ).strip()
    assert settings.split("|")[0] == "64"  # PostgreSQL's default
    path = Path(asyncio.run(backup(src, tmp_path / "many.mmops", jobs=2)).path)

    dst = make_db(pg15)
    pg15.psql("CREATE TABLE public.keep (x int); INSERT INTO public.keep VALUES (1);", dst.database)
    before = (schema_text(pg15.bindir, dst), data_digest(dst))
    for call in (plan_restore, restore):
        with pytest.raises(RestoreRefused) as err:
            asyncio.run(call(dst, path, mode=RestoreMode.REPLACE))
        message = str(err.value)
        locks, conns, prepared = (int(x) for x in settings.split("|"))
        assert f"holds {locks * (conns + prepared)}" in message
        assert "max_locks_per_transaction" in message and "nothing was changed" in message
        needed = int(message.split("needs about ")[1].split()[0])
        assert needed >= TABLES * 3  # table + primary key + index, at the very least
    assert (schema_text(pg15.bindir, dst), data_digest(dst)) == before


def test_out_of_shared_memory_keeps_postgresqls_hint():
    from ops.sandbox.postgres import debian_bindir

    bindir = debian_bindir(15)
    require(bindir is not None, "PostgreSQL 15 (Debian postgresql-15)")
    assert bindir is not None
    server = PostgresServer(
        base_dir=Path(tempfile.mkdtemp(prefix="mmops-test-locks-")),
        bindir=bindir,
        extra_conf={"max_locks_per_transaction": "10", "max_connections": "5"},
    )
    server.start()
    try:

        async def exhaust() -> asyncpg.PostgresError:
            conn = await asyncpg.connect(**server.url().connect_kwargs())
            try:
                async with conn.transaction():
                    for i in range(5000):
                        await conn.execute(f"CREATE TABLE public.x{i} (id int PRIMARY KEY)")
            except asyncpg.PostgresError as exc:
                return exc
            finally:
                await conn.close()
            raise AssertionError("the lock table never filled up")

        exc = asyncio.run(exhaust())
    finally:
        server.destroy()
    text = describe_pg_error(exc)
    assert exc.sqlstate == "53200"
    assert "out of shared memory" in text
    assert "max_locks_per_transaction" in text  # PostgreSQL's own hint, kept
