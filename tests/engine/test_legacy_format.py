"""A backup written before the schema came from pg_dump (its DDL in a ``schema.json`` member,
made by the previous release) still restores, exports and verifies."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ops.archive import ArchiveReader, verify_archive
from ops.engine.restore import restore
from ops.engine.results import RestoreMode

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy-format1.mmops"
pytestmark = pytest.mark.postgres


def test_the_fixture_is_a_schema_json_backup() -> None:
    with ArchiveReader(FIXTURE) as reader:
        names = {m.name for m in reader.members}
    assert "schema.json" in names and "schema.pgdump" not in names
    assert verify_archive(FIXTURE).ok


@pytest.mark.parametrize("mode", [RestoreMode.CREATE, RestoreMode.REPLACE])
def test_a_schema_json_backup_restores(pg15: Any, make_db: Any, tmp_path: Path,
                                       mode: RestoreMode) -> None:
    dst = make_db(pg15)
    if mode is RestoreMode.REPLACE:
        pg15.psql("CREATE SCHEMA app; CREATE TABLE app.users (id int);", dst.database)
    path = tmp_path / FIXTURE.name
    shutil.copy(FIXTURE, path)
    result = asyncio.run(restore(dst, path, mode=mode))
    assert result.total_rows == 5

    async def read() -> tuple[Any, ...]:
        conn = await asyncpg.connect(**dst.connect_kwargs())
        try:
            return (
                [tuple(r) for r in await conn.fetch(
                    "SELECT user_id, body FROM app.notes ORDER BY id")],
                [tuple(r) for r in await conn.fetch(
                    "SELECT * FROM app.note_counts ORDER BY user_id")],
                await conn.fetchval("SELECT nextval('app.notes_id_seq')"),
                await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = "
                                    "'notes_user'"),
            )
        finally:
            await conn.close()

    notes, counts, next_id, index = asyncio.run(read())
    assert notes == [(1, "hello"), (1, "world"), (2, 'tab\tand "quote"')]
    assert counts == [(1, 2), (2, 1)]
    assert next_id == 4 and index == 1
