"""The restore plan counts each row once: partitioned and inheritance parents hold no rows of
their own, so their leaves' rows must not be counted a second time through the parent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ops.engine.backup import backup
from ops.engine.restore import plan_restore
from ops.engine.results import RestoreMode

pytestmark = pytest.mark.postgres

SQL = """
CREATE TABLE public.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (id);
CREATE TABLE public.events_2024_a PARTITION OF public.events_2024 DEFAULT;
CREATE TABLE public.events_rest PARTITION OF public.events DEFAULT;
INSERT INTO public.events VALUES (1, '2024-02-02'), (2, '2024-03-03'), (3, '2030-01-01');
CREATE TABLE public.animals (name text);
CREATE TABLE public.cats (lives int) INHERITS (public.animals);
INSERT INTO public.animals VALUES ('generic');
INSERT INTO public.cats VALUES ('tom', 9), ('kit', 7);
CREATE TABLE public.notes (id int);
INSERT INTO public.notes SELECT generate_series(1, 4);
"""


@pytest.mark.parametrize("mode", [RestoreMode.REPLACE, RestoreMode.DATA_ONLY])
def test_plan_counts_rows_of_partitioned_and_inherited_tables_once(pg15, make_db, tmp_path, mode):
    src = make_db(pg15)
    pg15.psql(SQL, src.database)
    path = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    plan = asyncio.run(plan_restore(src, path, mode=mode))
    assert plan.live_rows_replaced == 3 + 3 + 4
    assert plan.rows_to_load == 3 + 3 + 4
