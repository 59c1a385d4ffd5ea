"""The schema of a database read from its catalogs, as SQL that recreates it (no pg_dump).

``read_schema`` runs inside the caller's REPEATABLE READ snapshot transaction and returns a
``SchemaDump``: pre-data statements (schemas, extensions, types, functions, sequences, tables,
views, matviews — ordered by pg_depend), post-data statements (constraints, indexes, foreign keys,
triggers, row-level security …), the matviews to refresh, the tables to COPY and the sequence
values. Like ``pg_dump --no-owner --no-privileges``: owners and GRANTs are not part of it.

Every name in the generated SQL is schema-qualified (the catalogs are read with an empty
search_path, as pg_dump does), so the statements run with ``search_path = ''``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..errors import DatabaseError, OpsError
from .catalog_context import CatalogContext
from .ddl_order import DependencyGraph, topo_order
from .ddl_post import read_post_data
from .ddl_routines import read_routines
from .ddl_tables import read_relations
from .ddl_types import alias_extension_members, read_extensions, read_schemas, read_types
from .pg_errors import describe_pg_error
from .sql_text import qualified, quote_ident, quote_literal

__all__ = [
    "SchemaDump",
    "SequenceValue",
    "TableDef",
    "UnsupportedSchema",
    "qualified",
    "quote_ident",
    "read_schema",
]


MIN_SERVER_VERSION = 140000  # multiranges, pg_depend for SQL-standard bodies, tgparentid


class UnsupportedSchema(OpsError):
    """The database holds objects this engine cannot recreate faithfully; nothing was dumped."""


@dataclass(frozen=True)
class TableDef:
    """A table whose rows are copied. ``columns``: raw (unquoted) names to COPY, attnum order."""

    schema: str
    name: str
    columns: tuple[str, ...]
    persistence: str
    oid: int
    approx_bytes: int

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass(frozen=True)
class SequenceValue:
    schema: str
    name: str
    last_value: int
    is_called: bool

    def setval_sql(self) -> str:
        target = quote_literal(qualified(self.schema, self.name))
        called = "true" if self.is_called else "false"
        return f"SELECT pg_catalog.setval({target}, {self.last_value}, {called})"


@dataclass(frozen=True)
class SchemaDump:
    """A database's schema as SQL. ``schemas``: every non-public user schema (empty ones too,
    they are recreated) plus ``public`` when an object or extension of the dump lives there."""

    schemas: tuple[str, ...]
    pre_data: tuple[str, ...]
    post_data: tuple[str, ...]
    refresh: tuple[str, ...]
    tables: tuple[TableDef, ...]
    sequences: tuple[SequenceValue, ...]
    extensions: tuple[str, ...]
    large_objects: int

    def to_json(self) -> dict[str, Any]:
        return {
            "schemas": list(self.schemas),
            "pre_data": list(self.pre_data),
            "post_data": list(self.post_data),
            "refresh": list(self.refresh),
            "tables": [
                {
                    "schema": t.schema,
                    "name": t.name,
                    "columns": list(t.columns),
                    "persistence": t.persistence,
                    "oid": t.oid,
                    "approx_bytes": t.approx_bytes,
                }
                for t in self.tables
            ],
            "sequences": [
                {
                    "schema": s.schema,
                    "name": s.name,
                    "last_value": s.last_value,
                    "is_called": s.is_called,
                }
                for s in self.sequences
            ],
            "extensions": list(self.extensions),
            "large_objects": self.large_objects,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SchemaDump:
        return cls(
            schemas=tuple(d["schemas"]),
            pre_data=tuple(d["pre_data"]),
            post_data=tuple(d["post_data"]),
            refresh=tuple(d["refresh"]),
            tables=tuple(
                TableDef(
                    schema=t["schema"],
                    name=t["name"],
                    columns=tuple(t["columns"]),
                    persistence=t["persistence"],
                    oid=int(t["oid"]),
                    approx_bytes=int(t["approx_bytes"]),
                )
                for t in d["tables"]
            ),
            sequences=tuple(
                SequenceValue(
                    schema=s["schema"],
                    name=s["name"],
                    last_value=int(s["last_value"]),
                    is_called=bool(s["is_called"]),
                )
                for s in d["sequences"]
            ),
            extensions=tuple(d["extensions"]),
            large_objects=int(d["large_objects"]),
        )


TablesFound = Callable[[tuple["TableDef", ...], int], None]
"""Called once the tables to copy are known: (tables, number of large objects)."""


async def read_schema(conn: asyncpg.Connection, on_tables: TablesFound | None = None) -> SchemaDump:
    """Read the user schema in the current snapshot; raise UnsupportedSchema for what we can't do.

    Must be called inside a transaction (the caller's snapshot); the search_path is set to ''
    for the reads and put back afterwards. ``on_tables`` is called as soon as the tables whose
    rows are copied are known and nothing unsupported was found, before the rest (post-data
    DDL, dependencies, sequences) is read: a backup starts copying rows on its other
    connections meanwhile.
    """
    try:
        old_path = await conn.fetchval("SELECT pg_catalog.current_setting('search_path')")
        await conn.execute("SELECT pg_catalog.set_config('search_path', '', true)")
        dump = await _read(conn, on_tables)
        await conn.execute("SELECT pg_catalog.set_config('search_path', $1, true)", old_path)
    except asyncpg.PostgresError as exc:
        raise DatabaseError(
            f"Reading the schema from the catalogs failed: {describe_pg_error(exc)}."
        ) from exc
    return dump


async def _read(conn: asyncpg.Connection, on_tables: TablesFound | None) -> SchemaDump:
    ctx = await CatalogContext.load(conn)
    if ctx.version_num < MIN_SERVER_VERSION:
        raise UnsupportedSchema(
            f"PostgreSQL server version {ctx.version_num} is older than 14, which this backup "
            "engine needs.",
            hint="Back this database up with pg_dump.",
        )
    graph = DependencyGraph()
    schemas = await read_schemas(conn, ctx, graph)
    extensions = await read_extensions(conn, ctx, graph)
    await alias_extension_members(conn, graph)
    unsupported = await read_types(conn, ctx, graph)
    unsupported += await read_routines(conn, ctx, graph)
    rels = await read_relations(conn, ctx, graph)
    unsupported += rels.unsupported
    unsupported += await _other_unsupported(conn)
    if unsupported:
        shown = "; ".join(unsupported[:5]) + (" …" if len(unsupported) > 5 else "")
        raise UnsupportedSchema(
            f"The database holds objects this backup engine cannot recreate: {shown}.",
            hint="Remove them or back this database up with pg_dump.",
        )
    tables = tuple(
        TableDef(
            rel.schema, rel.name, rels.copy_columns[oid], rel.persistence, oid, rel.approx_bytes
        )
        for oid, rel in rels.relations.items()
        if oid in rels.copy_columns
    )
    large_objects = int(
        await conn.fetchval("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata")
    )
    if on_tables is not None:
        on_tables(tables, large_objects)
    await graph.load_edges(conn)
    pre = [stmt for node in graph.ordered() for stmt in node.statements]
    pre += rels.owned_by
    post = await read_post_data(conn, ctx, rels.relations, rels.post_not_valid)

    matviews = [
        ("pg_class", r.oid) for r in rels.relations.values() if r.relkind == "m" and r.populated
    ]
    refresh = tuple(
        f"REFRESH MATERIALIZED VIEW {rels.relations[key[1]].qualified}"
        for key in topo_order(matviews, graph)
    )
    sequences = []
    seqs = sorted(rels.sequences)
    for start in range(0, len(seqs), 500):  # one round trip per 500 sequences
        part = seqs[start : start + 500]
        rows = await conn.fetch(
            " UNION ALL ".join(
                f"SELECT {i} AS i, last_value, is_called FROM {qualified(schema, name)}"
                for i, (schema, name) in enumerate(part)
            )
        )
        for r in sorted(rows, key=lambda r: r["i"]):
            schema, name = part[r["i"]]
            sequences.append(SequenceValue(schema, name, int(r["last_value"]), r["is_called"]))
    holding = {n.schema for n in graph.nodes.values() if n.schema} | {
        r["nspname"]
        for r in await conn.fetch(
            "SELECT n.nspname FROM pg_catalog.pg_extension e "
            "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'"
        )
    }
    used = [s for s in schemas if s != "public" or s in holding]
    return SchemaDump(
        schemas=tuple(used),
        pre_data=tuple(pre),
        post_data=tuple(post),
        refresh=refresh,
        tables=tables,
        sequences=tuple(sequences),
        extensions=tuple(extensions),
        large_objects=large_objects,
    )


async def _other_unsupported(conn: asyncpg.Connection) -> list[str]:
    """Object kinds outside this engine's scope that live in user schemas (not in extensions)."""
    from .catalog_context import user_schema

    checks = {
        "operator": ("pg_operator", "oprnamespace"),
        "operator class": ("pg_opclass", "opcnamespace"),
        "operator family": ("pg_opfamily", "opfnamespace"),
        "collation": ("pg_collation", "collnamespace"),
        "conversion": ("pg_conversion", "connamespace"),
        "text search configuration": ("pg_ts_config", "cfgnamespace"),
        "text search dictionary": ("pg_ts_dict", "dictnamespace"),
    }
    found: list[str] = []
    for what, (catalog, nscol) in checks.items():
        n = await conn.fetchval(
            f"SELECT count(*) FROM pg_catalog.{catalog} o "
            f"JOIN pg_catalog.pg_namespace n ON n.oid = o.{nscol} "
            f"WHERE {user_schema()} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "
            f"WHERE d.classid = 'pg_catalog.{catalog}'::pg_catalog.regclass "
            f"AND d.objid = o.oid AND d.deptype = 'e')"
        )
        if n:
            found.append(f"{n} {what}(s)")
    for what, sql in {
        "event trigger": "SELECT count(*) FROM pg_catalog.pg_event_trigger",
        "publication": "SELECT count(*) FROM pg_catalog.pg_publication",
        "cast": "SELECT count(*) FROM pg_catalog.pg_cast c WHERE c.oid >= 16384 AND NOT EXISTS "
        "(SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid = c.oid "
        "AND d.classid = 'pg_catalog.pg_cast'::pg_catalog.regclass AND d.deptype IN ('e', 'i'))",
    }.items():
        n = await conn.fetchval(sql)
        if n:
            found.append(f"{n} {what}(s)")
    return found
