"""The backup copies rows while pg_dump writes the schema (same snapshot), and large objects —
which only pg_dump carries — come back with their contents, owner, comment and grants."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ops.archive import verify_archive
from ops.engine import backup as backup_module
from ops.engine.backup import backup
from ops.engine.restore import restore
from ops.engine.results import RestoreMode

pytestmark = pytest.mark.postgres


def _fill(pg15: Any, database: str) -> None:
    pg15.psql(
        "CREATE TABLE public.big (id int PRIMARY KEY, body text);"
        "INSERT INTO public.big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 50000) g;"
        "CREATE TABLE public.small (id int PRIMARY KEY, note text);"
        "INSERT INTO public.small VALUES (1, 'a'), (2, 'b');"
        "CREATE INDEX small_note ON public.small (note);",
        database,
    )


@pytest.mark.parametrize("jobs", [1, 2], ids=["one connection", "two connections"])
def test_rows_are_copied_while_pg_dump_writes_the_schema(
    pg15: Any, make_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    url = make_db(pg15)
    _fill(pg15, url.database)
    seen: dict[str, Any] = {"copies": 0, "copies_before_pg_dump_ended": None}
    real_copy, real_dump = backup_module.copy_table_out, backup_module.dump_schema

    async def copy(*args: Any, **kwargs: Any) -> Any:
        seen["copies"] += 1
        return await real_copy(*args, **kwargs)

    async def dump(*args: Any, **kwargs: Any) -> Any:
        # Without the overlap no COPY could start before pg_dump ends: wait up to 20 s for one.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while seen["copies"] == 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await real_dump(*args, **kwargs)
        seen["copies_before_pg_dump_ended"] = seen["copies"]

    monkeypatch.setattr(backup_module, "copy_table_out", copy)
    monkeypatch.setattr(backup_module, "dump_schema", dump)
    result = asyncio.run(backup(url, tmp_path / "b.mmops", jobs=jobs))
    assert seen["copies_before_pg_dump_ended"] >= 1
    assert seen["copies"] == 2
    assert {t.name: t.rows for t in result.tables} == {"big": 50000, "small": 2}
    assert verify_archive(Path(result.path)).ok


def test_large_objects_round_trip_with_owner_comment_and_grants(
    pg15: Any, make_db: Any, tmp_path: Path
) -> None:
    src, dst = make_db(pg15), make_db(pg15)
    _fill(pg15, src.database)
    pg15.psql(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mmops_lo_reader') "
        "THEN CREATE ROLE mmops_lo_reader; END IF; END$$;"
        "SELECT lo_from_bytea(424242, convert_to(repeat('large object ', 20000), 'UTF8'));"
        "SELECT lo_from_bytea(424243, '\\x00ff00'::bytea);"
        "COMMENT ON LARGE OBJECT 424242 IS 'the big one';"
        "GRANT SELECT ON LARGE OBJECT 424243 TO mmops_lo_reader;",
        src.database,
    )
    result = asyncio.run(backup(src, tmp_path / "b.mmops", jobs=2))
    asyncio.run(restore(dst, Path(result.path), mode=RestoreMode.CREATE))

    async def read(url: Any) -> list[Any]:
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            return [tuple(r) for r in await conn.fetch(
                "SELECT m.oid::int, md5(lo_get(m.oid)), obj_description(m.oid, 'pg_largeobject'),"
                " m.lomacl::text FROM pg_largeobject_metadata m ORDER BY 1")]
        finally:
            await conn.close()

    before, after = asyncio.run(read(src)), asyncio.run(read(dst))
    assert [r[0] for r in before] == [424242, 424243]
    assert after == before
