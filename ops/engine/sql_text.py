"""Quoting of SQL identifiers and literals, the way PostgreSQL's quote_ident/quote_literal do it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Keywords that need quoting as identifiers: every keyword that is not UNRESERVED
# (``SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'`` on PostgreSQL 18, a superset of 15).
_QUOTED_KEYWORDS = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between bigint binary bit
    boolean both case cast char character check coalesce collate collation column concurrently
    constraint create cross current_catalog current_date current_role current_schema current_time
    current_timestamp current_user dec decimal default deferrable desc distinct do else end except
    exists extract false fetch float for foreign freeze from full grant greatest group grouping
    having ilike in initially inner inout int integer intersect interval into is isnull join json
    json_array json_arrayagg json_exists json_object json_objectagg json_query json_scalar
    json_serialize json_table json_value lateral leading least left like limit localtime
    localtimestamp merge_action national natural nchar none normalize not notnull null nullif
    numeric offset on only or order out outer overlaps overlay placing position precision primary
    real references returning right row select session_user setof similar smallint some substring
    symmetric system_user table tablesample then time timestamp to trailing treat trim true union
    unique user using values varchar variadic verbose when where window with xmlattributes
    xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize
    xmltable
    """.split()
)
_SAFE_IDENT = re.compile(r"[a-z_][a-z0-9_$]*\Z")


def quote_ident(name: str) -> str:
    """Quote an identifier only when PostgreSQL needs it (capitals, spaces, keywords, quotes)."""
    if _SAFE_IDENT.match(name) and name not in _QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``schema.name`` with both parts quoted as needed."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def quote_literal(value: str) -> str:
    """A string literal that reads back the same whatever standard_conforming_strings says."""
    body = value.replace("'", "''")
    if "\\" in value:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"


def statement_batches(
    statements: Iterable[str], *, max_statements: int = 200, max_bytes: int = 1 << 20
) -> Iterator[str]:
    """Join statements into ``;``-separated scripts (one round trip each, simple query protocol).

    Each statement ends with a newline before the ``;``, so a trailing ``--`` comment cannot
    swallow the separator.
    """
    batch: list[str] = []
    size = 0
    for stmt in statements:
        if batch and (len(batch) >= max_statements or size + len(stmt) > max_bytes):
            yield ";\n".join(batch)
            batch, size = [], 0
        batch.append(stmt.rstrip().rstrip(";") + "\n")
        size += len(stmt)
    if batch:
        yield ";\n".join(batch)
