"""Pre-data DDL for schemas, extensions and user types (enum, domain, composite, range)."""

from __future__ import annotations

import asyncpg

from .catalog_context import CatalogContext, user_schema
from .ddl_order import (
    RANK_DOMAIN,
    RANK_EXTENSION,
    RANK_SCHEMA,
    RANK_TYPE,
    DependencyGraph,
    Node,
)
from .sql_text import qualified, quote_ident, quote_literal

PUBLIC_SCHEMA_COMMENT = "standard public schema"


async def read_schemas(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph
) -> list[str]:
    """Add a node per non-public user schema; returns all user schema names (sorted)."""
    rows = await conn.fetch(
        f"SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n WHERE {user_schema()} "
        "ORDER BY n.nspname"
    )
    names = []
    for r in rows:
        oid, name = int(r["oid"]), r["nspname"]
        if ctx.is_member("pg_namespace", oid):
            continue
        names.append(name)
        node = Node(("pg_namespace", oid), RANK_SCHEMA, "", name)
        if name == "public":
            # The target already has public (with its stock comment); only a changed comment moves.
            text = ctx.comments.get(("pg_namespace", oid, 0))
            if text != PUBLIC_SCHEMA_COMMENT:
                value = "NULL" if text is None else quote_literal(text)
                node.statements.append(f"COMMENT ON SCHEMA public IS {value}")
        else:
            node.statements.append(f"CREATE SCHEMA {quote_ident(name)}")
            node.statements += ctx.comment("pg_namespace", oid, f"SCHEMA {quote_ident(name)}")
        graph.add(node)
    return names


async def read_extensions(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph
) -> list[str]:
    rows = await conn.fetch(
        "SELECT e.oid, e.extname, n.nspname FROM pg_catalog.pg_extension e "
        "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname <> 'plpgsql' ORDER BY e.extname"
    )
    names = []
    for r in rows:
        oid, name = int(r["oid"]), r["extname"]
        names.append(name)
        node = Node(("pg_extension", oid), RANK_EXTENSION, "", name)
        node.statements.append(
            f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)} "
            f"WITH SCHEMA {quote_ident(r['nspname'])}"
        )
        node.statements += ctx.comment("pg_extension", oid, f"EXTENSION {quote_ident(name)}")
        graph.add(node)
    return names


async def alias_extension_members(conn: asyncpg.Connection, graph: DependencyGraph) -> None:
    """Dependencies on an extension's member objects become dependencies on the extension."""
    rows = await conn.fetch(
        "SELECT classid::regclass::text AS cls, objid, refobjid FROM pg_catalog.pg_depend "
        "WHERE deptype = 'e' AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
    )
    for r in rows:
        graph.alias((r["cls"], int(r["objid"])), ("pg_extension", int(r["refobjid"])))


async def read_types(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph
) -> list[str]:
    """Enum, domain, composite and range types. Returns descriptions of unsupported types."""
    unsupported: list[str] = []
    rows = await conn.fetch(
        f"""
        SELECT t.oid, n.nspname, t.typname, t.typtype::text AS typtype, t.typrelid, t.typarray,
               t.typcategory::text AS typcategory,
               t.typelem, t.typnotnull,
               pg_catalog.format_type(t.typbasetype, t.typtypmod) AS basetype,
               pg_catalog.pg_get_expr(t.typdefaultbin, 'pg_catalog.pg_type'::pg_catalog.regclass)
                   AS defaultexpr,
               t.typdefault,
               CASE WHEN t.typcollation <> 0 AND t.typcollation IS DISTINCT FROM bt.typcollation
                    THEN pg_catalog.quote_ident(cn.nspname) || '.' ||
                         pg_catalog.quote_ident(co.collname) END AS collation,
               (SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)
                   AS relkind
        FROM pg_catalog.pg_type t
        JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = t.typcollation
        LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
        WHERE {user_schema()}
        ORDER BY n.nspname, t.typname
        """
    )
    by_oid = {int(r["oid"]): r for r in rows}
    enum_labels: dict[int, list[str]] = {}
    for r in await conn.fetch(
        "SELECT enumtypid, enumlabel FROM pg_catalog.pg_enum ORDER BY enumtypid, enumsortorder"
    ):
        enum_labels.setdefault(int(r["enumtypid"]), []).append(r["enumlabel"])
    ranges = {
        int(r["rngtypid"]): r
        for r in await conn.fetch(
            """
            SELECT r.rngtypid, pg_catalog.format_type(r.rngsubtype, NULL) AS subtype,
                   r.rngmultitypid,
                   pg_catalog.quote_ident(ocn.nspname) || '.' || pg_catalog.quote_ident(oc.opcname)
                       AS opclass,
                   CASE WHEN r.rngcollation <> 0 THEN pg_catalog.quote_ident(cn.nspname) || '.' ||
                        pg_catalog.quote_ident(co.collname) END AS collation,
                   NULLIF(r.rngcanonical, 0)::pg_catalog.regproc::text AS canonical,
                   NULLIF(r.rngsubdiff, 0)::pg_catalog.regproc::text AS subdiff
            FROM pg_catalog.pg_range r
            JOIN pg_catalog.pg_opclass oc ON oc.oid = r.rngsubopc
            JOIN pg_catalog.pg_namespace ocn ON ocn.oid = oc.opcnamespace
            LEFT JOIN pg_catalog.pg_collation co ON co.oid = r.rngcollation
            LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
            """
        )
    }
    domain_checks = await conn.fetch(
        """
        SELECT c.oid, c.contypid, c.conname, c.contype::text AS contype, c.convalidated,
               pg_catalog.pg_get_constraintdef(c.oid) AS def
        FROM pg_catalog.pg_constraint c WHERE c.contypid <> 0 ORDER BY c.contypid, c.conname
        """
    )
    composite_cols = await conn.fetch(
        """
        SELECT a.attrelid, a.attnum, a.attname,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
               CASE WHEN a.attcollation <> 0 AND a.attcollation IS DISTINCT FROM t.typcollation
                    THEN pg_catalog.quote_ident(cn.nspname) || '.' ||
                         pg_catalog.quote_ident(co.collname) END AS collation
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid AND c.relkind = 'c'
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attrelid, a.attnum
        """
    )
    cols_by_rel: dict[int, list[asyncpg.Record]] = {}
    for c in composite_cols:
        cols_by_rel.setdefault(int(c["attrelid"]), []).append(c)
    multiranges = {int(r["rngmultitypid"]): oid for oid, r in ranges.items()}

    for oid, r in by_oid.items():
        key = ("pg_type", oid)
        if ctx.is_member("pg_type", oid):
            continue
        # Array types and a table's row type belong to their element / relation.
        elem = int(r["typelem"])
        if r["typcategory"] == "A" and elem in by_oid:
            graph.alias(key, ("pg_type", elem))
            continue
        if oid in multiranges:
            graph.alias(key, ("pg_type", multiranges[oid]))
            continue
        relkind = r["relkind"]
        if relkind is not None and relkind != "c":
            graph.alias(key, ("pg_class", int(r["typrelid"])))
            continue
        name = qualified(r["nspname"], r["typname"])
        typtype = r["typtype"]
        stmts: list[str] = []
        rank = RANK_TYPE
        what = "TYPE"
        if typtype == "e":
            labels = ", ".join(quote_literal(x) for x in enum_labels.get(oid, []))
            stmts.append(f"CREATE TYPE {name} AS ENUM ({labels})")
        elif typtype == "c":
            graph.alias(("pg_class", int(r["typrelid"])), key)
            cols = []
            for c in cols_by_rel.get(int(r["typrelid"]), []):
                col = f"{quote_ident(c['attname'])} {c['type']}"
                if c["collation"]:
                    col += f" COLLATE {c['collation']}"
                cols.append(col)
            stmts.append(f"CREATE TYPE {name} AS (" + ", ".join(cols) + ")")
            for c in cols_by_rel.get(int(r["typrelid"]), []):
                stmts += ctx.comment(
                    "pg_class",
                    int(r["typrelid"]),
                    f"COLUMN {name}.{quote_ident(c['attname'])}",
                    int(c["attnum"]),
                )
        elif typtype == "r" and oid in ranges:
            rg = ranges[oid]
            opts = [f"subtype = {rg['subtype']}"]
            mr = by_oid.get(int(rg["rngmultitypid"]))
            if mr is not None:
                opts.append(f"multirange_type_name = {qualified(mr['nspname'], mr['typname'])}")
            opts.append(f"subtype_opclass = {rg['opclass']}")
            if rg["collation"]:
                opts.append(f"collation = {rg['collation']}")
            if rg["canonical"]:
                unsupported.append(f"range type {name} with a canonical function")
            if rg["subdiff"]:
                opts.append(f"subtype_diff = {rg['subdiff']}")
            stmts.append(f"CREATE TYPE {name} AS RANGE (" + ", ".join(opts) + ")")
        elif typtype == "d":
            rank, what = RANK_DOMAIN, "DOMAIN"
            sql = f"CREATE DOMAIN {name} AS {r['basetype']}"
            if r["collation"]:
                sql += f" COLLATE {r['collation']}"
            default = r["defaultexpr"] or r["typdefault"]
            if default is not None:
                sql += f" DEFAULT {default}"
            named_notnull = False
            for c in domain_checks:
                if int(c["contypid"]) != oid:
                    continue
                graph.alias(("pg_constraint", int(c["oid"])), key)
                if c["contype"] == "n":
                    named_notnull = True
                    sql += f" CONSTRAINT {quote_ident(c['conname'])} NOT NULL"
                elif c["convalidated"]:
                    sql += f" CONSTRAINT {quote_ident(c['conname'])} {c['def']}"
            if r["typnotnull"] and not named_notnull:
                sql += " NOT NULL"
            stmts.append(sql)
            for c in domain_checks:
                if int(c["contypid"]) == oid:
                    stmts += ctx.comment(
                        "pg_constraint",
                        int(c["oid"]),
                        f"CONSTRAINT {quote_ident(c['conname'])} ON DOMAIN {name}",
                    )
        elif typtype in ("b", "p", "r", "m"):
            unsupported.append(f"base or pseudo type {name}")
            continue
        else:
            continue
        stmts += ctx.comment("pg_type", oid, f"{what} {name}")
        graph.add(Node(key, rank, r["nspname"], r["typname"], stmts))
    return unsupported

