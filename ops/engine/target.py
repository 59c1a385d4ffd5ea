"""Read what a restore target already holds (objects, tables, columns, revision, FKs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

_SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"
_NOT_EXTENSION_MEMBER = """NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"""


@dataclass(frozen=True)
class TargetState:
    """A restore target as seen before the restore (plain data for the policy functions)."""

    database: str
    server_version: str
    user_relations: int
    schemas: frozenset[str]
    alembic_revision: str | None
    # (schema, name) -> copyable columns (no dropped, no generated), for data-only checks
    table_columns: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # (schema, name) -> tables whose foreign keys reference it
    referenced_by: dict[tuple[str, str], frozenset[tuple[str, str]]] = field(default_factory=dict)
    # (schema, name) -> tables it references
    references: dict[tuple[str, str], frozenset[tuple[str, str]]] = field(default_factory=dict)


_FOREIGN_KEYS = """WITH k AS (
     SELECT conrelid, confrelid FROM pg_catalog.pg_constraint
     WHERE contype = 'f' AND conparentid = 0),
   edges AS (
     -- pg_partition_tree() gives no rows for a plain table: then it stands for itself
     SELECT DISTINCT coalesce(s.relid, k.conrelid) AS src,
                     coalesce(d.relid, k.confrelid) AS dst
     FROM k
     LEFT JOIN LATERAL (SELECT relid FROM pg_catalog.pg_partition_tree(k.conrelid)
                        WHERE isleaf) s ON true
     LEFT JOIN LATERAL (SELECT relid FROM pg_catalog.pg_partition_tree(k.confrelid)
                        WHERE isleaf) d ON true)
   SELECT sn.nspname AS src_schema, sc.relname AS src, tn.nspname AS dst_schema,
          tc.relname AS dst
   FROM edges e
   JOIN pg_catalog.pg_class sc ON sc.oid = e.src
   JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
   JOIN pg_catalog.pg_class tc ON tc.oid = e.dst
   JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace"""


async def foreign_key_edges(
    conn: asyncpg.Connection,
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """(referencing, referenced) pairs between the tables that hold rows: a key declared on (or
    pointing at) a partitioned table stands for every leaf partition under it. Read from the
    catalogs only (no table lock), so the restore plan and the engine see the same keys."""
    rows = await conn.fetch(_FOREIGN_KEYS)
    return sorted(((r["src_schema"], r["src"]), (r["dst_schema"], r["dst"])) for r in rows)


async def read_target(conn: asyncpg.Connection) -> TargetState:
    database = await conn.fetchval("SELECT current_database()")
    version = await conn.fetchval("SHOW server_version")
    nrel = await conn.fetchval(
        f"""SELECT count(*) FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r','p','v','m','S','f')
              AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg_temp%'
              AND n.nspname NOT LIKE 'pg_toast_temp%' AND {_NOT_EXTENSION_MEMBER}"""
    )
    schemas = await conn.fetch(
        f"""SELECT nspname FROM pg_catalog.pg_namespace
            WHERE nspname NOT IN {_SYSTEM_SCHEMAS} AND nspname NOT LIKE 'pg_temp%'
              AND nspname NOT LIKE 'pg_toast_temp%'"""
    )
    cols = await conn.fetch(
        f"""SELECT n.nspname, c.relname,
                   coalesce(array_agg(a.attname ORDER BY a.attnum)
                            FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped
                                    AND a.attgenerated = ''), '{{}}') AS cols
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
            WHERE c.relkind IN ('r','p') AND n.nspname NOT IN {_SYSTEM_SCHEMAS}
              AND n.nspname NOT LIKE 'pg_temp%' AND {_NOT_EXTENSION_MEMBER}
            GROUP BY n.nspname, c.relname"""
    )
    referenced_by: dict[tuple[str, str], set[tuple[str, str]]] = {}
    references: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for src, dst in await foreign_key_edges(conn):
        referenced_by.setdefault(dst, set()).add(src)
        references.setdefault(src, set()).add(dst)
    table_columns = {(r["nspname"], r["relname"]): tuple(r["cols"]) for r in cols}
    revision = None
    for (schema, name), columns in table_columns.items():
        if name == "alembic_version" and "version_num" in columns:
            from .catalog import qualified

            rows = await conn.fetch(
                f"SELECT version_num FROM {qualified(schema, name)} ORDER BY version_num"
            )
            revision = ",".join(r[0] for r in rows) or None
            break
    return TargetState(
        database=database,
        server_version=version,
        user_relations=int(nrel),
        schemas=frozenset(r[0] for r in schemas),
        alembic_revision=revision,
        table_columns=table_columns,
        referenced_by={k: frozenset(v) for k, v in referenced_by.items()},
        references={k: frozenset(v) for k, v in references.items()},
    )


async def objects_in_schemas(conn: asyncpg.Connection, schemas: list[str]) -> list[str]:
    """Human-readable list of what a replace would drop: relations, routines, types."""
    rows = await conn.fetch(
        f"""SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table'
                     WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                     WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END
                   || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS what
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r','p','v','m','S','f')
              AND NOT c.relispartition AND {_NOT_EXTENSION_MEMBER}
            UNION ALL
            SELECT 'function ' || p.oid::regprocedure::text
            FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
              WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                AND d.deptype = 'e')
            UNION ALL
            SELECT 'type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname)
            FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = ANY($1::text[]) AND t.typtype IN ('e','d','c','r','m')
              AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class
                                      WHERE oid = t.typrelid) = 'c')
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid
                  AND d.deptype = 'e')
            ORDER BY 1""",
        schemas,
    )
    return [r[0] for r in rows]


async def row_counts(conn: asyncpg.Connection, tables: list[tuple[str, str]]) -> int:
    """Exact number of rows currently in ``tables`` (those that exist).

    Each table counts only its own rows (``FROM ONLY``): a partitioned parent holds none and an
    inheritance parent's children are counted as themselves, so no row is counted twice. One
    round trip finds which tables exist, then one per 500 tables counts them.
    """
    from .catalog import qualified

    names = [qualified(s, n) for s, n in tables]
    existing = [
        r[0]
        for r in await conn.fetch(
            "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
            names,
        )
    ]
    total = 0
    for start in range(0, len(existing), 500):
        part = existing[start : start + 500]
        total += int(
            await conn.fetchval(
                "SELECT " + " + ".join(f"(SELECT count(*) FROM ONLY {name})" for name in part)
            )
        )
    return total


@dataclass(frozen=True)
class LockCapacity:
    """The shared lock table's documented size: max_locks_per_transaction × (max_connections
    + max_prepared_transactions) object locks, shared by every session."""

    max_locks_per_transaction: int
    max_connections: int
    max_prepared_transactions: int

    @property
    def total(self) -> int:
        return self.max_locks_per_transaction * (
            self.max_connections + self.max_prepared_transactions
        )


async def lock_capacity(conn: asyncpg.Connection) -> LockCapacity:
    rows = await conn.fetch(
        "SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN "
        "('max_locks_per_transaction', 'max_connections', 'max_prepared_transactions')"
    )
    got = {r["name"]: int(r["setting"]) for r in rows}
    return LockCapacity(
        got["max_locks_per_transaction"], got["max_connections"], got["max_prepared_transactions"]
    )


async def relations_to_lock(
    conn: asyncpg.Connection,
    *,
    schemas: list[str] | None = None,
    tables: list[tuple[str, str]] | None = None,
) -> int:
    """How many relations a transaction locks to drop everything in ``schemas`` or to empty and
    reload ``tables``: the tables, their indexes, TOAST tables and TOAST indexes (and, for
    schemas, their sequences, views and materialized views)."""
    rows = await conn.fetchval(
        """
        WITH rel AS (
          SELECT c.oid, c.reltoastrelid FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')
            AND (n.nspname = ANY($1::text[])
                 OR (n.nspname, c.relname) IN (SELECT * FROM unnest($2::text[], $3::text[]))))
        SELECT (SELECT count(*) FROM rel)
             + (SELECT count(*) FROM pg_catalog.pg_index i
                WHERE i.indrelid IN (SELECT oid FROM rel))
             + 2 * (SELECT count(*) FROM rel WHERE reltoastrelid <> 0)
        """,
        schemas or [],
        [t[0] for t in tables or []],
        [t[1] for t in tables or []],
    )
    return int(rows)
