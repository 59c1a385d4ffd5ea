"""Pre-data DDL for functions, procedures and (plain) aggregates."""

from __future__ import annotations

import asyncpg

from .catalog_context import CatalogContext, user_schema
from .ddl_order import RANK_FUNCTION, DependencyGraph, Node
from .sql_text import qualified, quote_literal

_PARALLEL = {"s": "SAFE", "r": "RESTRICTED"}


async def read_routines(
    conn: asyncpg.Connection, ctx: CatalogContext, graph: DependencyGraph
) -> list[str]:
    """Add a node per user function/procedure/aggregate; returns unsupported ones."""
    unsupported: list[str] = []
    rows = await conn.fetch(
        f"""
        SELECT p.oid, n.nspname, p.proname, p.prokind::text AS prokind,
               p.proparallel::text AS proparallel,
               pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
               CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_catalog.pg_get_functiondef(p.oid)
               END AS def,
               a.aggkind::text AS aggkind, a.aggtransfn::pg_catalog.regproc::text AS sfunc,
               pg_catalog.format_type(a.aggtranstype, NULL) AS stype,
               a.aggtransspace, NULLIF(a.aggfinalfn, 0)::pg_catalog.regproc::text AS finalfunc,
               a.aggfinalextra, NULLIF(a.aggcombinefn, 0)::pg_catalog.regproc::text AS combinefunc,
               NULLIF(a.aggserialfn, 0)::pg_catalog.regproc::text AS serialfunc,
               NULLIF(a.aggdeserialfn, 0)::pg_catalog.regproc::text AS deserialfunc,
               a.agginitval, a.aggmtransfn <> 0 AS moving, a.aggsortop <> 0 AS sortop
        FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        LEFT JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid
        WHERE {user_schema()}
          -- range/multirange constructors belong to their type
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            AND d.objid = p.oid AND d.deptype = 'i')
        ORDER BY n.nspname, p.proname, args
        """
    )
    for r in rows:
        oid = int(r["oid"])
        if ctx.is_member("pg_proc", oid):
            continue
        sig = f"{qualified(r['nspname'], r['proname'])}({r['args']})"
        kind = r["prokind"]
        stmts: list[str] = []
        if kind in ("f", "p", "w"):
            stmts.append(r["def"].rstrip().rstrip(";"))
            what = "PROCEDURE" if kind == "p" else "FUNCTION"
        elif kind == "a" and r["aggkind"] == "n" and not r["moving"] and not r["sortop"]:
            what = "AGGREGATE"
            opts = [f"SFUNC = {r['sfunc']}", f"STYPE = {r['stype']}"]
            if r["aggtransspace"]:
                opts.append(f"SSPACE = {r['aggtransspace']}")
            if r["finalfunc"]:
                opts.append(f"FINALFUNC = {r['finalfunc']}")
                if r["aggfinalextra"]:
                    opts.append("FINALFUNC_EXTRA")
            for opt, col in (
                ("COMBINEFUNC", "combinefunc"),
                ("SERIALFUNC", "serialfunc"),
                ("DESERIALFUNC", "deserialfunc"),
            ):
                if r[col]:
                    opts.append(f"{opt} = {r[col]}")
            if r["agginitval"] is not None:
                opts.append(f"INITCOND = {quote_literal(r['agginitval'])}")
            if r["proparallel"] in _PARALLEL:
                opts.append(f"PARALLEL = {_PARALLEL[r['proparallel']]}")
            args = r["args"] or "*"
            stmts.append(
                f"CREATE AGGREGATE {qualified(r['nspname'], r['proname'])}({args}) ("
                + ", ".join(opts)
                + ")"
            )
            sig = f"{qualified(r['nspname'], r['proname'])}({args})"
        else:
            unsupported.append(f"aggregate {sig} (ordered-set, moving or with a sort operator)")
            continue
        stmts += ctx.comment("pg_proc", oid, f"{what} {sig}")
        graph.add(Node(("pg_proc", oid), RANK_FUNCTION, r["nspname"], r["proname"], stmts))
    return unsupported
