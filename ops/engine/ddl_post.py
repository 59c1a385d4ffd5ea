"""Post-data DDL: what is cheaper or only possible after the data is in.

Order: primary/unique/exclusion constraints and indexes, index partition attachments
(deepest first), CLUSTER/REPLICA IDENTITY, NOT VALID checks, foreign keys, extended statistics,
rules, triggers, row-level security and policies. Comments follow their object.
"""

from __future__ import annotations

import asyncpg

from .catalog_context import CatalogContext, user_schema
from .ddl_tables import Relation
from .sql_text import qualified, quote_ident

_POLICY_CMD = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_TRIGGER_STATE = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
_REPLIDENT = {"n": "NOTHING", "f": "FULL"}


def _only(rel: Relation) -> str:
    return "" if rel.relkind == "p" else "ONLY "


async def read_post_data(
    conn: asyncpg.Connection,
    ctx: CatalogContext,
    relations: dict[int, Relation],
    not_valid: list[str],
) -> list[str]:
    rel_oids = list(relations)
    indexes: list[str] = []
    attaches: list[tuple[int, str]] = []
    cluster: list[str] = []
    fks: list[str] = []

    constraints = await conn.fetch(
        """
        SELECT c.oid, c.conname, c.contype::text AS contype, c.conrelid, c.conindid, c.conparentid,
               pg_catalog.pg_get_constraintdef(c.oid) AS def
        FROM pg_catalog.pg_constraint c
        WHERE c.conrelid = ANY($1::pg_catalog.oid[]) AND c.contype IN ('p', 'u', 'x', 'f')
        ORDER BY c.conrelid, c.conname
        """,
        rel_oids,
    )
    constraint_index: dict[int, asyncpg.Record] = {}
    for c in constraints:
        rel = relations[int(c["conrelid"])]
        name = quote_ident(c["conname"])
        # Index-backed constraints go on each partition separately (then ATTACH); a foreign key
        # on a partitioned table must recurse (ONLY is refused there).
        only = _only(rel) if c["contype"] == "f" else "ONLY "
        stmt = f"ALTER TABLE {only}{rel.qualified} ADD CONSTRAINT {name} {c['def']}"
        comment = ctx.comment(
            "pg_constraint", int(c["oid"]), f"CONSTRAINT {name} ON {rel.qualified}"
        )
        if c["contype"] == "f":
            if int(c["conparentid"]) == 0:  # clones on partitions come with the parent's FK
                fks += [stmt, *comment]
        else:
            constraint_index[int(c["conindid"])] = c
            indexes += [stmt, *comment]

    depth = await _partition_depths(conn, rel_oids)
    for r in await conn.fetch(
        """
        SELECT i.indexrelid, i.indrelid, ic.relname, n.nspname, i.indisclustered,
               i.indisreplident,
               -- a constraint's index comes with its constraint: no definition needed (it is
               -- the costliest call here, ~30 µs per index on 15)
               CASE WHEN NOT EXISTS (
                   SELECT 1 FROM pg_catalog.pg_constraint k
                   WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                     AND k.contype IN ('p', 'u', 'x'))
                 THEN pg_catalog.pg_get_indexdef(i.indexrelid) END AS def,
               pn.nspname AS parent_schema, pc.relname AS parent_name
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
        LEFT JOIN pg_catalog.pg_inherits ih ON ih.inhrelid = i.indexrelid
        LEFT JOIN pg_catalog.pg_class pc ON pc.oid = ih.inhparent
        LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE i.indrelid = ANY($1::pg_catalog.oid[])
        ORDER BY n.nspname, ic.relname
        """,
        rel_oids,
    ):
        rel = relations[int(r["indrelid"])]
        oid = int(r["indexrelid"])
        idx = qualified(r["nspname"], r["relname"])
        if oid not in constraint_index:
            indexes.append(r["def"])
            indexes += ctx.comment("pg_class", oid, f"INDEX {idx}")
        if r["parent_name"] is not None:
            attaches.append(
                (
                    -depth.get(rel.oid, 0),
                    f"ALTER INDEX {qualified(r['parent_schema'], r['parent_name'])} "
                    f"ATTACH PARTITION {idx}",
                )
            )
        if r["indisclustered"]:
            cluster.append(f"ALTER TABLE {rel.qualified} CLUSTER ON {quote_ident(r['relname'])}")
        if r["indisreplident"]:
            cluster.append(
                f"ALTER TABLE ONLY {rel.qualified} REPLICA IDENTITY USING INDEX "
                f"{quote_ident(r['relname'])}"
            )
    for rel in relations.values():
        if rel.relkind in ("r", "p", "m") and rel.replident in _REPLIDENT:
            cluster.append(
                f"ALTER TABLE ONLY {rel.qualified} REPLICA IDENTITY {_REPLIDENT[rel.replident]}"
            )

    domain_not_valid = [
        f"ALTER DOMAIN {qualified(r['nspname'], r['typname'])} "
        f"ADD CONSTRAINT {quote_ident(r['conname'])} {r['def']}"
        for r in await conn.fetch(
            f"""
            SELECT n.nspname, t.typname, c.conname, pg_catalog.pg_get_constraintdef(c.oid) AS def
            FROM pg_catalog.pg_constraint c
            JOIN pg_catalog.pg_type t ON t.oid = c.contypid
            JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
            WHERE c.contypid <> 0 AND c.contype = 'c' AND NOT c.convalidated AND {user_schema()}
            ORDER BY n.nspname, t.typname, c.conname
            """
        )
    ]

    stats: list[str] = []
    for r in await conn.fetch(
        f"""
        SELECT s.oid, n.nspname, s.stxname, pg_catalog.pg_get_statisticsobjdef(s.oid) AS def
        FROM pg_catalog.pg_statistic_ext s
        JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
        WHERE s.stxrelid = ANY($1::pg_catalog.oid[]) AND {user_schema()}
        ORDER BY n.nspname, s.stxname
        """,
        rel_oids,
    ):
        stats.append(r["def"])
        stats += ctx.comment(
            "pg_statistic_ext", int(r["oid"]), f"STATISTICS {qualified(r['nspname'], r['stxname'])}"
        )

    rules: list[str] = []
    for r in await conn.fetch(
        """
        SELECT r.oid, r.rulename, r.ev_class, pg_catalog.pg_get_ruledef(r.oid) AS def
        FROM pg_catalog.pg_rewrite r
        WHERE r.ev_class = ANY($1::pg_catalog.oid[]) AND r.rulename <> '_RETURN'
        ORDER BY r.ev_class, r.rulename
        """,
        rel_oids,
    ):
        rel = relations[int(r["ev_class"])]
        rules.append(r["def"].strip().rstrip(";"))
        rules += ctx.comment(
            "pg_rewrite", int(r["oid"]), f"RULE {quote_ident(r['rulename'])} ON {rel.qualified}"
        )

    triggers: list[str] = []
    for r in await conn.fetch(
        """
        SELECT t.oid, t.tgname, t.tgrelid, t.tgenabled::text AS tgenabled,
               pg_catalog.pg_get_triggerdef(t.oid) AS def
        FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid = ANY($1::pg_catalog.oid[]) AND NOT t.tgisinternal AND t.tgparentid = 0
        ORDER BY t.tgrelid, t.tgname
        """,
        rel_oids,
    ):
        rel = relations[int(r["tgrelid"])]
        name = quote_ident(r["tgname"])
        triggers.append(r["def"])
        if r["tgenabled"] in _TRIGGER_STATE:
            triggers.append(
                f"ALTER TABLE {rel.qualified} {_TRIGGER_STATE[r['tgenabled']]} TRIGGER {name}"
            )
        triggers += ctx.comment("pg_trigger", int(r["oid"]), f"TRIGGER {name} ON {rel.qualified}")

    security: list[str] = []
    for rel in relations.values():
        if rel.row_security:
            security.append(f"ALTER TABLE {rel.qualified} ENABLE ROW LEVEL SECURITY")
        if rel.force_row_security:
            security.append(f"ALTER TABLE {rel.qualified} FORCE ROW LEVEL SECURITY")
    for r in await conn.fetch(
        """
        SELECT p.oid, p.polname, p.polrelid, p.polcmd::text AS polcmd, p.polpermissive,
               CASE WHEN p.polroles = '{0}' THEN NULL ELSE ARRAY(
                   SELECT rolname FROM pg_catalog.pg_roles WHERE oid = ANY(p.polroles)
                   ORDER BY rolname) END AS roles,
               pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual,
               pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck
        FROM pg_catalog.pg_policy p
        WHERE p.polrelid = ANY($1::pg_catalog.oid[])
        ORDER BY p.polrelid, p.polname
        """,
        rel_oids,
    ):
        rel = relations[int(r["polrelid"])]
        name = quote_ident(r["polname"])
        roles = "PUBLIC" if r["roles"] is None else ", ".join(quote_ident(x) for x in r["roles"])
        sql = (
            f"CREATE POLICY {name} ON {rel.qualified} "
            f"AS {'PERMISSIVE' if r['polpermissive'] else 'RESTRICTIVE'} "
            f"FOR {_POLICY_CMD[r['polcmd']]} TO {roles}"
        )
        if r["qual"] is not None:
            sql += f" USING ({r['qual']})"
        if r["withcheck"] is not None:
            sql += f" WITH CHECK ({r['withcheck']})"
        security.append(sql)
        security += ctx.comment("pg_policy", int(r["oid"]), f"POLICY {name} ON {rel.qualified}")

    attaches.sort(key=lambda a: a[0])
    return [
        *indexes,
        *(a[1] for a in attaches),
        *cluster,
        *not_valid,
        *domain_not_valid,
        *fks,
        *stats,
        *rules,
        *triggers,
        *security,
    ]


async def _partition_depths(conn: asyncpg.Connection, rel_oids: list[int]) -> dict[int, int]:
    """How many partition levels lie above each relation (0 for a non-partition)."""
    rows = await conn.fetch(
        """
        SELECT c.oid, (SELECT count(*) FROM pg_catalog.pg_partition_ancestors(c.oid)) - 1 AS depth
        FROM pg_catalog.pg_class c
        WHERE c.oid = ANY($1::pg_catalog.oid[]) AND c.relispartition
        """,
        rel_oids,
    )
    return {int(r["oid"]): int(r["depth"]) for r in rows}
