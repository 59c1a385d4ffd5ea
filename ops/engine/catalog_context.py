"""What every DDL reader needs from the catalogs: server version, extension members, comments."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from .sql_text import quote_literal

# A WHERE fragment selecting user schemas; ``{n}`` is the pg_namespace alias.
USER_SCHEMA_SQL = (
    "{n}.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND {n}.nspname NOT LIKE 'pg\\_toast%' AND {n}.nspname NOT LIKE 'pg\\_temp\\_%'"
)


def user_schema(alias: str = "n") -> str:
    return USER_SCHEMA_SQL.format(n=alias)


@dataclass
class CatalogContext:
    version_num: int
    extension_members: set[tuple[str, int]] = field(default_factory=set)
    comments: dict[tuple[str, int, int], str] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: asyncpg.Connection) -> CatalogContext:
        version = int(await conn.fetchval("SELECT current_setting('server_version_num')"))
        members = {
            (r["cls"], int(r["objid"]))
            for r in await conn.fetch(
                "SELECT classid::regclass::text AS cls, objid FROM pg_catalog.pg_depend "
                "WHERE deptype = 'e'"
            )
        }
        comments = {
            (r["cls"], int(r["objoid"]), int(r["objsubid"])): r["description"]
            for r in await conn.fetch(
                "SELECT classoid::regclass::text AS cls, objoid, objsubid, description "
                "FROM pg_catalog.pg_description WHERE objoid >= 16384 "
                "OR classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
            )
        }
        return cls(version, members, comments)

    def is_member(self, catalog: str, oid: int) -> bool:
        """True when the object belongs to an extension (CREATE EXTENSION recreates it)."""
        return (catalog, oid) in self.extension_members

    def comment(self, catalog: str, oid: int, target: str, subid: int = 0) -> list[str]:
        """``COMMENT ON <target> IS '...'`` when the object has a comment, else nothing."""
        text = self.comments.get((catalog, oid, subid))
        if text is None:
            return []
        return [f"COMMENT ON {target} IS {quote_literal(text)}"]
