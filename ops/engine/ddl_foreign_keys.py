"""Foreign keys among the tables a data-only restore reloads: set aside, then put back as they were.

A migrated schema's foreign keys may form cycles (``users.current_doc_id → documents``,
``documents.user_id → users``) or reference their own table, all NOT DEFERRABLE: no load order
satisfies them row by row, and ``session_replication_role`` needs a superuser. So, inside the
restore's one transaction, the keys whose both ends are reloaded are dropped before the load and
re-added after it with their catalog definition (name, columns, actions, deferrability,
NOT VALID / NOT ENFORCED state and comment): re-adding validates every row at once, and a
failure rolls the whole restore back. Keys to or from tables that are not reloaded stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from .sql_text import quote_ident, quote_literal

Table = tuple[str, str]


@dataclass(frozen=True)
class ForeignKey:
    table: str  # qualified, quoted
    partitioned: bool
    name: str
    definition: str
    comment: str | None

    def drop_sql(self) -> str:
        # A key on a partitioned table is dropped (and re-added) on the parent; its clones on
        # the partitions follow it.
        only = "" if self.partitioned else "ONLY "
        return f"ALTER TABLE {only}{self.table} DROP CONSTRAINT {quote_ident(self.name)}"

    def add_sql(self) -> list[str]:
        only = "" if self.partitioned else "ONLY "
        stmts = [
            f"ALTER TABLE {only}{self.table} ADD CONSTRAINT {quote_ident(self.name)} "
            f"{self.definition}"
        ]
        if self.comment is not None:
            stmts.append(
                f"COMMENT ON CONSTRAINT {quote_ident(self.name)} ON {self.table} IS "
                f"{quote_literal(self.comment)}"
            )
        return stmts


_KEYS_AMONG = """
WITH sel AS (
  SELECT c.oid FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[])))
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS tbl,
       c.relkind = 'p' AS partitioned, k.conname,
       pg_catalog.pg_get_constraintdef(k.oid) AS def,
       pg_catalog.obj_description(k.oid, 'pg_constraint') AS comment
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0
  AND (k.conrelid IN (SELECT oid FROM sel) OR EXISTS (
       SELECT 1 FROM pg_catalog.pg_partition_tree(k.conrelid) t
       WHERE t.relid IN (SELECT oid FROM sel)))
  AND (k.confrelid IN (SELECT oid FROM sel) OR EXISTS (
       SELECT 1 FROM pg_catalog.pg_partition_tree(k.confrelid) t
       WHERE t.relid IN (SELECT oid FROM sel)))
ORDER BY n.nspname, c.relname, k.conname
"""


async def foreign_keys_among(conn: asyncpg.Connection, tables: Sequence[Table]) -> list[ForeignKey]:
    """The foreign keys whose referencing and referenced tables are both in ``tables``."""
    rows = await conn.fetch(_KEYS_AMONG, [t[0] for t in tables], [t[1] for t in tables])
    return [
        ForeignKey(r["tbl"], r["partitioned"], r["conname"], r["def"], r["comment"]) for r in rows
    ]
