"""Pre-data DDL for relations: sequences, tables (partitions, inheritance), views, matviews."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from .catalog_context import CatalogContext, user_schema
from .ddl_order import (
    RANK_MATVIEW,
    RANK_SEQUENCE,
    RANK_TABLE,
    RANK_VIEW,
    DependencyGraph,
    Node,
)
from .sql_text import qualified, quote_ident, quote_literal

_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}


@dataclass
class Relation:
    oid: int
    schema: str
    name: str
    relkind: str
    persistence: str
    is_partition: bool
    bound: str | None
    partkey: str | None
    reloptions: list[str]
    approx_bytes: int
    populated: bool
    of_type: bool
    replident: str
    row_security: bool
    force_row_security: bool

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass
class RelationsRead:
    """What the relation reader hands to read_schema besides the graph nodes."""

    relations: dict[int, Relation] = field(default_factory=dict)
    copy_columns: dict[int, tuple[str, ...]] = field(default_factory=dict)
    sequences: list[tuple[str, str]] = field(default_factory=list)
    owned_by: list[str] = field(default_factory=list)
    post_not_valid: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


def with_options(reloptions: list[str]) -> str:
    """``WITH (name='value', ...)`` from a reloptions array, or ''."""
    if not reloptions:
        return ""
    parts = []
    for opt in reloptions:
        name, _, value = opt.partition("=")
        parts.append(f"{quote_ident(name)}={quote_literal(value)}")
    return " WITH (" + ", ".join(parts) + ")"


async def read_relations(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph
) -> RelationsRead:
    out = RelationsRead()
    for r in await conn.fetch(
        f"""
        SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind,
               c.relpersistence::text AS relpersistence, c.relispartition,
               pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound,
               CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey,
               c.reloptions, c.relispopulated,
               -- From relpages, not pg_total_relation_size(): that opens (locks) every table
               -- and would make the catalog read queue behind any ALTER TABLE.
               (c.relpages::bigint + coalesce((SELECT t.relpages FROM pg_catalog.pg_class t
                                               WHERE t.oid = c.reltoastrelid), 0))
                 * pg_catalog.current_setting('block_size')::bigint AS bytes,
               c.reloftype <> 0 AS of_type, c.relreplident::text AS relreplident, c.relrowsecurity,
               c.relforcerowsecurity
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {user_schema()}
        ORDER BY n.nspname, c.relname
        """
    ):
        oid = int(r["oid"])
        if ctx.is_member("pg_class", oid):
            continue
        out.relations[oid] = Relation(
            oid, r["nspname"], r["relname"], r["relkind"], r["relpersistence"],
            r["relispartition"], r["bound"], r["partkey"], list(r["reloptions"] or []),
            int(r["bytes"]), r["relispopulated"], r["of_type"], r["relreplident"],
            r["relrowsecurity"], r["relforcerowsecurity"],
        )
    for r in await conn.fetch("SELECT oid, adrelid FROM pg_catalog.pg_attrdef"):
        graph.alias(("pg_attrdef", int(r["oid"])), ("pg_class", int(r["adrelid"])))
    for r in await conn.fetch(
        "SELECT oid, ev_class FROM pg_catalog.pg_rewrite WHERE rulename = '_RETURN'"
    ):
        graph.alias(("pg_rewrite", int(r["oid"])), ("pg_class", int(r["ev_class"])))

    await _read_sequences(conn, ctx, graph, out)
    await _read_tables(conn, ctx, graph, out)
    await _read_views(conn, ctx, graph, out)
    return out


async def _read_sequences(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph, out: RelationsRead
) -> None:
    rows = await conn.fetch(
        """
        SELECT s.seqrelid, pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart,
               s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
               d.refobjid, d.deptype::text AS deptype, a.attname
        FROM pg_catalog.pg_sequence s
        LEFT JOIN pg_catalog.pg_depend d
               ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.seqrelid
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
        LEFT JOIN pg_catalog.pg_attribute a
               ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        """
    )
    for r in rows:
        rel = out.relations.get(int(r["seqrelid"]))
        if rel is None:
            continue
        out.sequences.append((rel.schema, rel.name))
        key = ("pg_class", rel.oid)
        owner = out.relations.get(int(r["refobjid"])) if r["refobjid"] is not None else None
        if r["deptype"] == "i" and owner is not None:
            # Identity sequences are made with their column (GENERATED … AS IDENTITY).
            graph.alias(key, ("pg_class", owner.oid))
            continue
        unlogged = "UNLOGGED " if rel.persistence == "u" else ""
        stmts = [
            f"CREATE {unlogged}SEQUENCE {rel.qualified} AS {r['type']} "
            + sequence_options(r)
        ]
        stmts += ctx.comment("pg_class", rel.oid, f"SEQUENCE {rel.qualified}")
        graph.add(Node(key, RANK_SEQUENCE, rel.schema, rel.name, stmts))
        if owner is not None:
            graph.ignore(key, ("pg_class", owner.oid))
            out.owned_by.append(
                f"ALTER SEQUENCE {rel.qualified} OWNED BY "
                f"{owner.qualified}.{quote_ident(r['attname'])}"
            )


def sequence_options(r: asyncpg.Record) -> str:
    cycle = "CYCLE" if r["seqcycle"] else "NO CYCLE"
    return (
        f"START WITH {r['seqstart']} INCREMENT BY {r['seqincrement']} "
        f"MINVALUE {r['seqmin']} MAXVALUE {r['seqmax']} CACHE {r['seqcache']} {cycle}"
    )


async def _read_tables(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph, out: RelationsRead
) -> None:
    cols_by_rel: dict[int, list[asyncpg.Record]] = {}
    for c in await conn.fetch(
        """
        SELECT a.attrelid, a.attnum, a.attname,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull, a.attidentity::text AS attidentity,
               a.attgenerated::text AS attgenerated,
               a.attislocal, a.attstorage::text AS attstorage, t.typstorage::text AS typstorage,
               CASE WHEN a.attcollation <> 0 AND a.attcollation IS DISTINCT FROM t.typcollation
                    THEN pg_catalog.quote_ident(cn.nspname) || '.' ||
                         pg_catalog.quote_ident(co.collname) END AS collation,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p')
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attrelid, a.attnum
        """
    ):
        cols_by_rel.setdefault(int(c["attrelid"]), []).append(c)
    checks: dict[int, list[asyncpg.Record]] = {}
    notnulls: dict[tuple[int, int], asyncpg.Record] = {}
    for c in await conn.fetch(
        """
        SELECT c.oid, c.conrelid, c.conname, c.contype::text AS contype, c.convalidated,
               c.conislocal,
               c.connoinherit, c.conkey, pg_catalog.pg_get_constraintdef(c.oid) AS def
        FROM pg_catalog.pg_constraint c
        WHERE c.contype IN ('c', 'n') AND c.conrelid <> 0
        ORDER BY c.conrelid, c.conname
        """
    ):
        graph.alias(("pg_constraint", int(c["oid"])), ("pg_class", int(c["conrelid"])))
        if c["contype"] == "c":
            checks.setdefault(int(c["conrelid"]), []).append(c)
        else:
            notnulls[(int(c["conrelid"]), int(c["conkey"][0]))] = c
    parents: dict[int, list[int]] = {}
    for r in await conn.fetch(
        "SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits ORDER BY inhrelid, inhseqno"
    ):
        parents.setdefault(int(r["inhrelid"]), []).append(int(r["inhparent"]))
    identity = {
        (int(r["refobjid"]), int(r["refobjsubid"])): r
        for r in await conn.fetch(
            """
            SELECT d.objid, d.refobjid, d.refobjsubid, sn.nspname, sc.relname, s.seqstart,
                   s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_sequence s ON s.seqrelid = d.objid
            JOIN pg_catalog.pg_class sc ON sc.oid = d.objid
            JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'i'
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            """
        )
    }

    for rel in out.relations.values():
        if rel.relkind == "f":
            out.unsupported.append(f"foreign table {rel.qualified}")
            continue
        if rel.relkind not in ("r", "p"):
            continue
        if rel.of_type:
            out.unsupported.append(f"typed table {rel.qualified} (CREATE TABLE … OF type)")
            continue
        cols = cols_by_rel.get(rel.oid, [])
        if rel.relkind == "r":
            out.copy_columns[rel.oid] = tuple(c["attname"] for c in cols if not c["attgenerated"])
        inherits = [] if rel.is_partition else parents.get(rel.oid, [])
        lines: list[str] = []
        after: list[str] = []
        comments: list[str] = []
        for c in cols:
            col = quote_ident(c["attname"])
            target = f"ALTER TABLE ONLY {rel.qualified} ALTER COLUMN {col}"
            nn = notnulls.get((rel.oid, int(c["attnum"])))
            if not (c["attislocal"] or rel.is_partition):
                # Inherited column: comes from INHERITS; only local additions are replayed.
                if c["default"] is not None and not c["attgenerated"]:
                    after.append(f"{target} SET DEFAULT {c['default']}")
                if nn is not None and nn["conislocal"]:
                    after.append(
                        f"ALTER TABLE ONLY {rel.qualified} ADD CONSTRAINT "
                        f"{quote_ident(nn['conname'])} NOT NULL {col}"
                    )
                elif nn is None and c["attnotnull"] and not _parent_not_null(
                    cols_by_rel, inherits, c["attname"]
                ):
                    after.append(f"{target} SET NOT NULL")
            else:
                line = f"{col} {c['type']}"
                if c["collation"]:
                    line += f" COLLATE {c['collation']}"
                if c["attgenerated"] and c["default"] is not None:
                    kind = " STORED" if c["attgenerated"] == "s" else " VIRTUAL"
                    line += f" GENERATED ALWAYS AS ({c['default']}){kind}"
                elif c["default"] is not None:
                    line += f" DEFAULT {c['default']}"
                if c["attidentity"] in _IDENTITY and (rel.oid, int(c["attnum"])) in identity:
                    # Inline, not ALTER TABLE ONLY … ADD GENERATED: PostgreSQL 17+ refuses
                    # that on a partitioned table ("cannot add identity to a column of only
                    # the partitioned table") and every version accepts it in CREATE TABLE.
                    seq = identity[(rel.oid, int(c["attnum"]))]
                    seqname = qualified(seq["nspname"], seq["relname"])
                    line += (
                        f" GENERATED {_IDENTITY[c['attidentity']]} AS IDENTITY "
                        f"(SEQUENCE NAME {seqname} {sequence_options(seq)})"
                    )
                    after += ctx.comment("pg_class", int(seq["objid"]), f"SEQUENCE {seqname}")
                if nn is not None:
                    if not nn["convalidated"]:
                        out.post_not_valid.append(
                            f"ALTER TABLE ONLY {rel.qualified} ADD CONSTRAINT "
                            f"{quote_ident(nn['conname'])} NOT NULL {col} NOT VALID"
                        )
                    elif nn["conislocal"] or rel.is_partition:
                        line += f" CONSTRAINT {quote_ident(nn['conname'])} NOT NULL"
                        if nn["connoinherit"]:
                            line += " NO INHERIT"
                elif c["attnotnull"]:
                    line += " NOT NULL"
                lines.append(line)
            if not (c["attislocal"] or rel.is_partition) and (
                c["attidentity"] in _IDENTITY and (rel.oid, int(c["attnum"])) in identity
            ):
                # An inheritance child's own identity on an inherited column. A partition's
                # identity (17+) has no sequence of its own: ATTACH PARTITION brings it.
                seq = identity[(rel.oid, int(c["attnum"]))]
                seqname = qualified(seq["nspname"], seq["relname"])
                after.append(
                    f"{target} ADD GENERATED {_IDENTITY[c['attidentity']]} AS IDENTITY "
                    f"(SEQUENCE NAME {seqname} {sequence_options(seq)})"
                )
                after += ctx.comment("pg_class", int(seq["objid"]), f"SEQUENCE {seqname}")
            if c["attstorage"] != c["typstorage"] and c["attstorage"] in _STORAGE:
                after.append(f"{target} SET STORAGE {_STORAGE[c['attstorage']]}")
            comments += ctx.comment(
                "pg_class", rel.oid, f"COLUMN {rel.qualified}.{col}", int(c["attnum"])
            )
        for ck in checks.get(rel.oid, []):
            if not (ck["conislocal"] or rel.is_partition):
                continue
            if not ck["convalidated"]:
                if ck["conislocal"]:
                    # Recurse, so children get their inherited copy (also NOT VALID).
                    only = "ONLY " if ck["connoinherit"] else ""
                    out.post_not_valid.append(
                        f"ALTER TABLE {only}{rel.qualified} ADD CONSTRAINT "
                        f"{quote_ident(ck['conname'])} {ck['def']}"
                    )
                continue
            lines.append(f"CONSTRAINT {quote_ident(ck['conname'])} {ck['def']}")
            comments += ctx.comment(
                "pg_constraint",
                int(ck["oid"]),
                f"CONSTRAINT {quote_ident(ck['conname'])} ON {rel.qualified}",
            )
        unlogged = "UNLOGGED " if rel.persistence == "u" else ""
        sql = f"CREATE {unlogged}TABLE {rel.qualified} (" + ", ".join(lines) + ")"
        if inherits:
            sql += " INHERITS (" + ", ".join(
                out.relations[p].qualified for p in inherits if p in out.relations
            ) + ")"
        if rel.partkey:
            sql += f" PARTITION BY {rel.partkey}"
        sql += with_options(rel.reloptions)
        stmts = [sql, *after]
        if rel.is_partition and rel.oid in parents and parents[rel.oid][0] in out.relations:
            parent = out.relations[parents[rel.oid][0]]
            stmts.append(
                f"ALTER TABLE ONLY {parent.qualified} ATTACH PARTITION {rel.qualified} {rel.bound}"
            )
        stmts += ctx.comment("pg_class", rel.oid, f"TABLE {rel.qualified}")
        stmts += comments
        graph.add(Node(("pg_class", rel.oid), RANK_TABLE, rel.schema, rel.name, stmts))


def _parent_not_null(
    cols_by_rel: dict[int, list[asyncpg.Record]], parents: list[int], attname: str
) -> bool:
    return any(
        c["attname"] == attname and c["attnotnull"]
        for p in parents
        for c in cols_by_rel.get(p, [])
    )


async def _read_views(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph, out: RelationsRead
) -> None:
    views = [r for r in out.relations.values() if r.relkind in ("v", "m")]
    if not views:
        return
    defs = {
        int(r["oid"]): r["def"]
        for r in await conn.fetch(
            "SELECT c.oid, pg_catalog.pg_get_viewdef(c.oid) AS def FROM pg_catalog.pg_class c "
            "WHERE c.oid = ANY($1::pg_catalog.oid[])",
            [v.oid for v in views],
        )
    }
    col_names: dict[int, list[tuple[int, str]]] = {}
    for r in await conn.fetch(
        "SELECT attrelid, attnum, attname FROM pg_catalog.pg_attribute "
        "WHERE attrelid = ANY($1::pg_catalog.oid[]) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attrelid, attnum",
        [v.oid for v in views],
    ):
        col_names.setdefault(int(r["attrelid"]), []).append((int(r["attnum"]), r["attname"]))
    for v in views:
        body = defs[v.oid].strip().rstrip(";")
        if v.relkind == "v":
            what, rank = "VIEW", RANK_VIEW
            stmts = [f"CREATE VIEW {v.qualified}{with_options(v.reloptions)} AS {body}"]
        else:
            what, rank = "MATERIALIZED VIEW", RANK_MATVIEW
            stmts = [
                f"CREATE MATERIALIZED VIEW {v.qualified}{with_options(v.reloptions)} AS "
                f"{body} WITH NO DATA"
            ]
        stmts += ctx.comment("pg_class", v.oid, f"{what} {v.qualified}")
        for attnum, name in col_names.get(v.oid, []):
            stmts += ctx.comment(
                "pg_class", v.oid, f"COLUMN {v.qualified}.{quote_ident(name)}", attnum
            )
        graph.add(Node(("pg_class", v.oid), rank, v.schema, v.name, stmts))
