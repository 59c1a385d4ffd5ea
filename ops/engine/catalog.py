"""What our own data path needs from the catalogs: the tables whose rows we COPY, the
sequences' values, the schemas and extensions. The DDL itself comes from pg_dump
(``pg_tools.dump_schema``), in the same snapshot.

``read_catalog`` runs inside the caller's REPEATABLE READ snapshot transaction. Like pg_dump, it
leaves out what belongs to an extension (pg_dump itself carries the rows of extension
configuration tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from ..archive.schema import SchemaError, decode
from ..errors import ArchiveError, DatabaseError
from .pg_errors import describe_pg_error
from .sql_text import qualified, quote_ident, quote_literal

__all__ = [
    "Catalog",
    "SequenceValue",
    "TableDef",
    "qualified",
    "quote_ident",
    "read_catalog",
]

# User schemas: not the system ones, not another session's temporary ones.
_USER_SCHEMA = """n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"""


def _not_member(catalog: str, alias: str) -> str:
    return f"""NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.{catalog}'::pg_catalog.regclass AND d.objid = {alias}.oid
      AND d.deptype = 'e')"""


@dataclass(frozen=True)
class TableDef:
    """A table whose rows are copied. ``columns``: raw (unquoted) names to COPY, attnum order
    (no generated columns: COPY FROM recomputes them)."""

    schema: str
    name: str
    columns: tuple[str, ...]
    approx_bytes: int

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)


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
class Catalog:
    """``schemas``: the user schemas (``public`` only when something lives there)."""

    schemas: tuple[str, ...]
    tables: tuple[TableDef, ...]
    sequences: tuple[SequenceValue, ...]
    extensions: tuple[str, ...]
    large_objects: int

    def to_json(self) -> dict[str, Any]:
        return {
            "schemas": list(self.schemas),
            "sequences": [
                {"schema": s.schema, "name": s.name, "last_value": s.last_value,
                 "is_called": s.is_called}
                for s in self.sequences
            ],
            "extensions": list(self.extensions),
            "large_objects": self.large_objects,
        }


_TABLES = f"""
SELECT n.nspname, c.relname,
       coalesce(array_agg(a.attname ORDER BY a.attnum)
                FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
                '{{}}') AS cols,
       -- From relpages, not pg_total_relation_size(): that opens (locks) every table.
       (c.relpages::bigint + coalesce((SELECT t.relpages FROM pg_catalog.pg_class t
                                       WHERE t.oid = c.reltoastrelid), 0))
         * pg_catalog.current_setting('block_size')::bigint AS bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {_USER_SCHEMA}
  AND {_not_member('pg_class', 'c')}
GROUP BY n.nspname, c.relname, c.oid
ORDER BY n.nspname, c.relname
"""

_SEQUENCES = f"""
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND {_USER_SCHEMA}
  AND {_not_member('pg_class', 'c')}
ORDER BY 1, 2
"""

_SCHEMAS = f"""
SELECT n.nspname FROM pg_catalog.pg_namespace n
WHERE {_USER_SCHEMA} AND {_not_member('pg_namespace', 'n')}
  AND (n.nspname <> 'public'
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extnamespace = n.oid))
ORDER BY 1
"""


async def read_tables(conn: asyncpg.Connection) -> tuple[TableDef, ...]:
    """The tables whose rows our COPY carries: ordinary tables and leaf partitions, permanent
    or unlogged, not an extension's (pg_dump carries an extension's configuration rows)."""
    try:
        rows = await conn.fetch(_TABLES)
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"Reading the table list failed: {describe_pg_error(exc)}.") from exc
    return tuple(
        TableDef(r["nspname"], r["relname"], tuple(r["cols"]), int(r["bytes"])) for r in rows
    )


async def read_catalog(conn: asyncpg.Connection, tables: tuple[TableDef, ...]) -> Catalog:
    """The rest of what our side records: schemas, sequence values, extensions, large objects."""
    try:
        schemas = tuple(r[0] for r in await conn.fetch(_SCHEMAS))
        names = [(r[0], r[1]) for r in await conn.fetch(_SEQUENCES)]
        sequences: list[SequenceValue] = []
        for start in range(0, len(names), 500):  # one round trip per 500 sequences
            part = names[start : start + 500]
            rows = await conn.fetch(
                " UNION ALL ".join(
                    f"SELECT {i} AS i, last_value, is_called FROM {qualified(s, n)}"
                    for i, (s, n) in enumerate(part)
                )
            )
            for r in sorted(rows, key=lambda r: r["i"]):
                s, n = part[r["i"]]
                sequences.append(SequenceValue(s, n, int(r["last_value"]), bool(r["is_called"])))
        extensions = tuple(
            r[0] for r in await conn.fetch(
                "SELECT extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' "
                "ORDER BY 1")
        )
        large_objects = int(
            await conn.fetchval("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata")
        )
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"Reading the catalogs failed: {describe_pg_error(exc)}.") from exc
    return Catalog(schemas, tables, tuple(sequences), extensions, large_objects)


class _SequenceDoc(msgspec.Struct, frozen=True):
    schema: str
    name: str
    last_value: int
    is_called: bool


class _JsonMember(msgspec.Struct, frozen=True):
    """What a restore reads of ``catalog.json`` (and of an older backup's ``schema.json``)."""

    schemas: list[str] = []
    sequences: list[_SequenceDoc] = []
    extensions: list[str] = []
    pre_data: list[str] = []
    post_data: list[str] = []
    refresh: list[str] = []


MAX_JSON_MEMBER = 256 << 20


def parse_json_member(data: bytes, name: str) -> dict[str, Any]:
    """A JSON member of a backup, checked against its schema (bounded size and depth) before
    anything reads it: ArchiveError (exit 6) in one sentence otherwise."""
    try:
        _typed, plain = decode(data, _JsonMember, max_bytes=MAX_JSON_MEMBER)
    except SchemaError as exc:
        raise ArchiveError(f"The backup's {name} member is unusable: {exc}.") from exc
    return plain


def sequences_from_json(d: dict[str, Any]) -> tuple[SequenceValue, ...]:
    return tuple(
        SequenceValue(s["schema"], s["name"], int(s["last_value"]), bool(s["is_called"]))
        for s in d.get("sequences", [])
    )
