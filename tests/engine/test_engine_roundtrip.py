"""Backup → restore through the real engine on real PostgreSQL servers.

Fidelity: `pg_dump --schema-only` of source and target are identical and every table's rows and
every sequence value match. Atomicity: a failing restore leaves the target exactly as it was.
Consistency: a backup taken under concurrent writes restores to one point in time.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import threading
from pathlib import Path

import asyncpg
import pytest

from ops.archive import ArchiveReader
from ops.engine.backup import backup
from ops.engine.restore import plan_restore, restore
from ops.engine.results import RestoreMode
from ops.errors import RestoreFailed, RestoreRefused
from tests.fidelity import data_digest, expected_schema_text, load_fixture, schema_text

pytestmark = pytest.mark.postgres


def _dump_bin(*servers):
    """pg_dump of the newest server involved (it can read every older one)."""
    return max(servers, key=lambda s: s.major).bindir


def assert_same_schema(a: str, b: str) -> None:
    if a != b:
        diff = "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=2))
        pytest.fail(f"schema differs after restore:\n{diff[:6000]}")


def _fixture_db(server, make_db):
    url = make_db(server)
    load_fixture(server, url.database)
    return url


@pytest.mark.parametrize(
    "src_name,dst_name",
    [("pg15", "pg15"), pytest.param("pg18", "pg18", marks=pytest.mark.pg18),
     pytest.param("pg15", "pg18", marks=pytest.mark.pg18)],
)
def test_backup_restore_round_trip_is_exact(request, make_db, tmp_path, src_name, dst_name):
    src_server = request.getfixturevalue(src_name)
    dst_server = request.getfixturevalue(dst_name)
    src = _fixture_db(src_server, make_db)
    dst = make_db(dst_server)
    result = asyncio.run(backup(src, tmp_path / "b.mmops", jobs=2))
    assert Path(result.path).stat().st_mode & 0o777 == 0o600
    assert result.alembic_revision == "abc123def456"
    asyncio.run(restore(dst, Path(result.path), mode=RestoreMode.CREATE))
    bindir = _dump_bin(src_server, dst_server)
    if src_server.major == dst_server.major:
        expected = schema_text(bindir, src)
    else:
        # Another major version deparses views differently (and 18 names NOT NULL
        # constraints): the reference is pg_dump's own script loaded into the target version.
        expected = expected_schema_text(src, dst_server, make_db(dst_server), bindir)
    assert_same_schema(expected, schema_text(bindir, dst))
    assert data_digest(src) == data_digest(dst)


def test_replace_makes_a_changed_database_equal_to_the_backup(pg15, make_db, tmp_path):
    src = _fixture_db(pg15, make_db)
    path = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    dst = _fixture_db(pg15, make_db)
    pg15.psql(
        "CREATE TABLE public.stray (x int); INSERT INTO public.stray VALUES (1);"
        "DELETE FROM public.alembic_version;",
        dst.database,
    )
    plan = asyncio.run(plan_restore(dst, path, mode=RestoreMode.REPLACE))
    assert "table public.stray" in plan.objects_to_drop
    seen = []
    asyncio.run(
        restore(dst, path, mode=RestoreMode.REPLACE, confirm=lambda p: seen.append(p) or True)
    )
    assert seen and seen[0].objects_to_drop == plan.objects_to_drop
    bindir = pg15.bindir
    assert_same_schema(schema_text(bindir, src), schema_text(bindir, dst))
    assert data_digest(src) == data_digest(dst)


def test_data_only_reloads_rows_and_sequences_into_the_existing_schema(pg15, make_db, tmp_path):
    src = _fixture_db(pg15, make_db)
    path = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    dst = _fixture_db(pg15, make_db)
    before = data_digest(dst)
    # Change data in the copy; the data-only restore must put the backup's rows back.
    pg15.psql(_first_table_mutation(dst.database, pg15), dst.database)
    assert data_digest(dst) != before
    asyncio.run(restore(dst, path, mode=RestoreMode.DATA_ONLY))
    assert data_digest(dst) == data_digest(src)


def _first_table_mutation(database, server) -> str:
    table = server.psql(
        "SELECT quote_ident(n.nspname)||'.'||quote_ident(c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid=c.relnamespace WHERE c.relname='alembic_version'",
        database,
    ).strip()
    return f"UPDATE {table} SET version_num = version_num;" + (
        "SELECT setval(c.oid::regclass, 424242) FROM pg_class c JOIN pg_namespace n "
        "ON n.oid=c.relnamespace WHERE c.relkind='S' AND n.nspname NOT IN "
        "('pg_catalog','information_schema') LIMIT 1;"
    )


def test_create_mode_refuses_a_non_empty_target_and_leaves_it_untouched(pg15, make_db, tmp_path):
    src = _fixture_db(pg15, make_db)
    path = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    dst = make_db(pg15)
    pg15.psql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (7);", dst.database)
    before = (schema_text(pg15.bindir, dst), data_digest(dst))
    with pytest.raises(RestoreRefused, match="not empty"):
        asyncio.run(restore(dst, path))
    assert (schema_text(pg15.bindir, dst), data_digest(dst)) == before


def _corrupt_last_data_member(path: Path) -> str:
    with ArchiveReader(path) as r:
        tables = r.manifest["tables"]
        last = max(
            (t for t in tables if t["rows"]), key=lambda t: r.member(t["member"]).chunks[-1][0]
        )
        offset, length = r.member(last["member"]).chunks[-1]
    with open(path, "r+b") as f:
        f.seek(offset + length // 2)
        byte = f.read(1)
        f.seek(offset + length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    return last["member"]


def test_failed_replace_restore_leaves_the_target_exactly_as_it_was(pg15, make_db, tmp_path):
    src = _fixture_db(pg15, make_db)
    path = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    bad_member = _corrupt_last_data_member(path)
    dst = make_db(pg15)
    pg15.psql(
        "CREATE TABLE public.precious (id int PRIMARY KEY, v text);"
        "INSERT INTO public.precious SELECT g, md5(g::text) FROM generate_series(1,500) g;"
        "CREATE SEQUENCE public.s; SELECT setval('public.s', 77);",
        dst.database,
    )
    before = (schema_text(pg15.bindir, dst), data_digest(dst))
    with pytest.raises(RestoreFailed, match=re.escape(bad_member)) as err:
        asyncio.run(restore(dst, path, mode=RestoreMode.REPLACE))
    assert "unchanged" in str(err.value)
    assert (schema_text(pg15.bindir, dst), data_digest(dst)) == before


def test_backup_under_concurrent_writes_restores_one_point_in_time(pg15, make_db, tmp_path):
    src = make_db(pg15)
    pg15.psql(
        """
        CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL);
        CREATE TABLE transfer (id bigserial PRIMARY KEY, account_id int NOT NULL
            REFERENCES account(id), amount bigint NOT NULL, note text);
        CREATE TABLE total (id int PRIMARY KEY, n bigint NOT NULL, s bigint NOT NULL);
        INSERT INTO account SELECT g, 0 FROM generate_series(1, 50) g;
        INSERT INTO total VALUES (1, 0, 0);
        INSERT INTO transfer (account_id, amount, note)
            SELECT 1 + g % 50, 1, repeat('x', 500) FROM generate_series(1, 40000) g;
        UPDATE account a SET balance = (SELECT count(*) FROM transfer t WHERE t.account_id = a.id);
        UPDATE total SET n = 40000, s = 40000;
        """,
        src.database,
    )
    stop = threading.Event()
    writes = {"n": 0}

    def writer() -> None:
        async def go() -> None:
            conn = await asyncpg.connect(**src.connect_kwargs())
            try:
                i = 0
                while not stop.is_set():
                    i += 1
                    acc = 1 + i % 50
                    async with conn.transaction():
                        # New parent row + child rows + totals, all in one transaction.
                        new_acc = 1000 + i
                        await conn.execute("INSERT INTO account VALUES ($1, 1)", new_acc)
                        await conn.execute(
                            "INSERT INTO transfer (account_id, amount) VALUES ($1, 1), ($2, 1)",
                            acc, new_acc,
                        )
                        await conn.execute(
                            "UPDATE account SET balance = balance + 1 WHERE id = $1", acc
                        )
                        await conn.execute("UPDATE total SET n = n + 2, s = s + 2")
                    writes["n"] += 1
            finally:
                await conn.close()

        asyncio.run(go())

    t = threading.Thread(target=writer)
    t.start()
    try:
        while writes["n"] < 20:
            stop.wait(0.05)
        result = asyncio.run(backup(src, tmp_path / "c.mmops", jobs=2))
        before_end = writes["n"]
    finally:
        stop.set()
        t.join()
    assert before_end > 20, "the writer must have been running during the backup"
    dst = make_db(pg15)
    asyncio.run(restore(dst, Path(result.path)))  # FKs are re-created: any orphan fails here
    out = pg15.psql(
        "SELECT (SELECT count(*) FROM transfer), (SELECT sum(amount) FROM transfer),"
        " (SELECT n FROM total), (SELECT s FROM total),"
        " (SELECT sum(balance) FROM account),"
        " (SELECT count(*) FROM transfer t LEFT JOIN account a ON a.id = t.account_id"
        "  WHERE a.id IS NULL)",
        dst.database,
    ).strip().split("|")
    count, amount, n, s, balances, orphans = map(int, out)
    assert (count, amount) == (n, s), "transfer rows and the total come from different moments"
    assert balances == amount, "account balances and transfers come from different moments"
    assert orphans == 0
    assert count > 40000
