import asyncio

import asyncpg
import pytest


def test_pg15_server_accepts_password_login(pg15, make_db):
    url = make_db(pg15)

    async def go():
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            return await conn.fetchval("show server_version_num")
        finally:
            await conn.close()

    assert asyncio.run(go()).startswith("15")


@pytest.mark.postgres
@pytest.mark.pg16
def test_the_third_major_is_a_real_postgresql_16_server(pg16, make_db):
    url = make_db(pg16)

    async def go():
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            return (await conn.fetchval("show server_version_num"),
                    await conn.fetchval("SELECT count(*) FROM pg_catalog.pg_language "
                                        "WHERE lanname = 'plpgsql'"))
        finally:
            await conn.close()

    version, plpgsql = asyncio.run(go())
    assert version.startswith("16") and plpgsql == 1
    assert pg16.major == 16


def test_pg15_refuses_a_wrong_password(pg15, make_db):
    url = make_db(pg15)
    kwargs = url.connect_kwargs() | {"password": "wrong"}

    async def go():
        await asyncpg.connect(**kwargs)

    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(go())


def test_createdb_quotes_names_a_hand_written_quote_would_break(pg15) -> None:
    name = 'we"ird name'
    url = pg15.createdb(name)
    try:
        assert url.database == name
        assert pg15.psql("SELECT current_database()", name).strip() == name
    finally:
        pg15.dropdb(name)
    assert name not in pg15.psql("SELECT datname FROM pg_database")
