"""Read the live database's status: tables that hold rows, their counts, the alembic revision,
the foreign keys between them."""

from __future__ import annotations

import asyncpg

from ..dburl import DbUrl
from ..engine.connection import connection
from ..engine.sql_text import qualified
from ..engine.target import foreign_key_edges
from ..policy.live import LiveForeignKey, LiveStatus, LiveTable

_COUNT_BATCH = 200  # tables counted per query (one round trip, not one per table)

_TABLES = """
SELECT n.nspname AS schema, c.relname AS name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
ORDER BY 1, 2
"""


async def live_status_of(conn: asyncpg.Connection, database: str, server: str) -> LiveStatus:
    """The status through an open connection (tables that hold rows: plain tables and leaf
    partitions, the units a backup's manifest lists)."""
    version = str(await conn.fetchval("SHOW server_version"))
    names = [(r["schema"], r["name"]) for r in await conn.fetch(_TABLES)]
    counts: dict[tuple[str, str], int] = {}
    for start in range(0, len(names), _COUNT_BATCH):
        batch = names[start:start + _COUNT_BATCH]
        query = " UNION ALL ".join(
            f"SELECT {i}::int AS i, count(*) AS n FROM ONLY {qualified(s, t)}"
            for i, (s, t) in enumerate(batch)
        )
        for r in await conn.fetch(query):
            counts[batch[r["i"]]] = int(r["n"])
    revision = None
    alembic = [k for k in names if k[1] == "alembic_version"]
    if alembic:
        schema, name = ("public", "alembic_version") if ("public", "alembic_version") in alembic \
            else alembic[0]
        vals = await conn.fetch(f"SELECT version_num FROM {qualified(schema, name)} ORDER BY 1")
        revision = ",".join(str(v[0]) for v in vals) or None
    return LiveStatus(
        database=database,
        server=server,
        server_version=version,
        alembic_revision=revision,
        tables=[LiveTable(s, t, counts.get((s, t), 0)) for s, t in names],
        foreign_keys=[LiveForeignKey(*src, *dst) for src, dst in await foreign_key_edges(conn)],
    )


async def read_live_status(url: DbUrl) -> LiveStatus:
    """Connect to ``url`` and read its status (changes nothing)."""
    async with connection(url, application_name="mmops status") as conn:
        return await live_status_of(conn, url.database, url.redacted())
