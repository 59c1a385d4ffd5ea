"""The sandbox app schema comes from alembic migrations shipped in the package; seed is fixed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from ops.dburl import DbUrl
from ops.errors import UsageError
from ops.sandbox.app import APP_TABLES, current_revision, head_revision, migrate, seed
from ops.sandbox.app.migrate import upgrade_sql

pytestmark = pytest.mark.postgres


async def _fetch(url: DbUrl, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_head_revision_is_the_last_of_a_linear_chain() -> None:
    assert head_revision() == "0003_document_word_count"
    sql = upgrade_sql(None)
    assert sql.index("0001_users_documents") < sql.index("0002_dictionaries_recovery")
    assert "BEGIN;" not in sql and "COMMIT;" not in sql  # the caller owns the transaction


def test_migrations_reach_head_and_record_it(make_db: Callable[..., DbUrl]) -> None:
    url = make_db()
    assert asyncio.run(current_revision(url)) is None
    assert asyncio.run(migrate(url)) == head_revision()
    rows = asyncio.run(_fetch(url, "SELECT version_num FROM alembic_version"))
    assert [r["version_num"] for r in rows] == [head_revision()]
    tables = {r["relname"] for r in asyncio.run(_fetch(
        url, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = "
             "'public'::regnamespace"))}
    assert tables == {*APP_TABLES, "alembic_version"}
    # Running again is a no-op.
    assert asyncio.run(migrate(url)) == head_revision()


def test_migrations_step_by_step_move_alembic_version(make_db: Callable[..., DbUrl]) -> None:
    url = make_db()
    assert asyncio.run(migrate(url, "0001_users_documents")) == "0001_users_documents"
    cols = {r["column_name"] for r in asyncio.run(_fetch(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name='documents'"))}
    assert "word_count" not in cols
    assert asyncio.run(migrate(url)) == head_revision()
    cols = {r["column_name"] for r in asyncio.run(_fetch(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name='documents'"))}
    assert {"word_count", "tags", "metadata", "content"} <= cols


def test_seed_is_deterministic_and_realistic(make_db: Callable[..., DbUrl]) -> None:
    a, b = make_db(), make_db()
    for url in (a, b):
        asyncio.run(migrate(url))
        result = asyncio.run(seed(url))
        assert (result.users, result.documents) == (20, 200)
        assert result.dictionary_words > 0 and result.recovery_rows > 0
    q = ("SELECT md5(string_agg(d::text, '|' ORDER BY id)) AS h FROM documents d")
    assert asyncio.run(_fetch(a, q))[0]["h"] == asyncio.run(_fetch(b, q))[0]["h"]
    stats = asyncio.run(_fetch(a, "SELECT avg(length(content))::int AS avg, "
                                  "bool_or(content ~ '[^\\x01-\\x7f]') AS uni, "
                                  "count(*) FILTER (WHERE cardinality(tags) > 0) AS tagged "
                                  "FROM documents"))[0]
    assert 2000 <= stats["avg"] <= 3500 and stats["uni"] and stats["tagged"] > 50
    # Identity sequences moved past the explicit ids: the app can insert.
    new_id = asyncio.run(_fetch(a, "INSERT INTO users (email, display_name, password_hash) "
                                   "VALUES ('new@example.com', 'N', 'x') RETURNING id"))
    assert new_id[0]["id"] == 21


def test_seed_refuses_a_database_with_users(make_db: Callable[..., DbUrl]) -> None:
    url = make_db()
    asyncio.run(migrate(url))
    asyncio.run(seed(url, users=2, documents=3))
    with pytest.raises(UsageError, match="already has users"):
        asyncio.run(seed(url, users=2, documents=3))
