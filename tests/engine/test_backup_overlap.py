"""The backup copies rows on its other connections while the leader still reads the catalogs
(post-data DDL, dependencies, sequences), and refuses large objects before any row is copied."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ops.archive import verify_archive
from ops.engine import backup as backup_module
from ops.engine import catalog as catalog_module
from ops.engine.backup import backup
from ops.errors import UsageError

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


def _watch(monkeypatch: pytest.MonkeyPatch, wait_for_copy: float) -> dict[str, Any]:
    """Record COPY starts, and whether one started while read_post_data was running (it waits
    up to ``wait_for_copy`` seconds for one)."""
    seen: dict[str, Any] = {"copies": 0, "copies_during_post_data": None}
    real_copy = backup_module.copy_table_out
    real_post = catalog_module.read_post_data

    async def copy(*args: Any, **kwargs: Any) -> Any:
        seen["copies"] += 1
        return await real_copy(*args, **kwargs)

    async def post(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_for_copy
        while seen["copies"] == 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        result = await real_post(*args, **kwargs)
        seen["copies_during_post_data"] = seen["copies"]
        return result

    monkeypatch.setattr(backup_module, "copy_table_out", copy)
    monkeypatch.setattr(catalog_module, "read_post_data", post)
    return seen


@pytest.mark.parametrize(
    "jobs,wait,copied_during_post_data",
    [
        # The other connection copies while the leader still reads the catalogs (the wrapper
        # waits up to 20 s for a COPY to start: without the overlap none would).
        (2, 20.0, True),
        # One connection: the leader copies after the catalogs.
        (1, 0.5, False),
    ],
    ids=["two connections overlap", "one connection copies after the catalogs"],
)
def test_rows_are_copied_while_the_leader_reads_the_rest_of_the_catalogs(
    pg15: Any, make_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    jobs: int, wait: float, copied_during_post_data: bool,
) -> None:
    url = make_db(pg15)
    _fill(pg15, url.database)
    seen = _watch(monkeypatch, wait_for_copy=wait)
    result = asyncio.run(backup(url, tmp_path / "b.mmops", jobs=jobs))
    assert (seen["copies_during_post_data"] >= 1) is copied_during_post_data
    assert seen["copies"] == 2
    assert {t.name: t.rows for t in result.tables} == {"big": 50000, "small": 2}
    assert verify_archive(Path(result.path)).ok


def test_large_objects_are_refused_before_any_row_is_copied(
    pg15: Any, make_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_db(pg15)
    _fill(pg15, url.database)
    pg15.psql("SELECT lo_create(0);", url.database)
    seen = _watch(monkeypatch, wait_for_copy=0.0)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UsageError, match="holds 1 large object"):
        asyncio.run(backup(url, out / "b.mmops", jobs=2))
    assert seen["copies"] == 0
    assert list(out.iterdir()) == []
