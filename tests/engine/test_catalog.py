"""read_schema: the catalogs as SQL, proven by a pg_dump comparison after a real restore."""

from __future__ import annotations

import asyncio
import difflib
import json

import asyncpg
import pytest

from ops.dburl import DbUrl
from ops.engine.catalog import (
    SchemaDump,
    SequenceValue,
    TableDef,
    UnsupportedSchema,
    qualified,
    quote_ident,
    read_schema,
)
from ops.engine.ddl_order import (
    RANK_FUNCTION,
    RANK_SCHEMA,
    RANK_TABLE,
    RANK_VIEW,
    DependencyGraph,
    Node,
)
from tests.fidelity import (
    copy_through,
    data_digest,
    expected_schema_text,
    load_fixture,
    newest_pg_dump_bindir,
    normalize_dump,
    schema_text,
)

# --- unit tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("users", "users"),
        ("_x1$", "_x1$"),
        ("Users", '"Users"'),
        ("App Data", '"App Data"'),
        ("order", '"order"'),
        ("select", '"select"'),
        ("user", '"user"'),
        ("name", "name"),  # unreserved keyword: no quotes, like quote_ident()
        ('say "hi"', '"say ""hi"""'),
        ("1abc", '"1abc"'),
        ("ünï", '"ünï"'),
        ("", '""'),
    ],
)
def test_quote_ident_quotes_like_postgres(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


def test_qualified_quotes_both_parts() -> None:
    assert qualified("App Data", "order") == '"App Data"."order"'
    assert TableDef("public", "T", ("a",), "p", 1, 0).qualified == 'public."T"'


def test_setval_sql_quotes_the_name_inside_a_literal() -> None:
    seq = SequenceValue("App Data", "it's", 42, False)
    assert seq.setval_sql() == (
        "SELECT pg_catalog.setval('\"App Data\".\"it''s\"', 42, false)"
    )


def test_schema_dump_json_round_trip_is_exact() -> None:
    dump = SchemaDump(
        schemas=("App Data", "public"),
        pre_data=("CREATE SCHEMA \"App Data\"", "CREATE TABLE public.t (a integer)"),
        post_data=("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (a)",),
        refresh=("REFRESH MATERIALIZED VIEW public.m",),
        tables=(TableDef("public", "t", ("a", "b c"), "u", 16384, 8192),),
        sequences=(SequenceValue("public", "s", -9223372036854775808, True),),
        extensions=("citext",),
        large_objects=3,
    )
    through_text = json.loads(json.dumps(dump.to_json()))
    assert SchemaDump.from_json(through_text) == dump


def test_normalize_dump_drops_noise_lines() -> None:
    raw = (
        "--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET statement_timeout = 0;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n\n\n"
        "CREATE TABLE public.t (\n    a integer\n);\n\n\n\n\\unrestrict abc\n"
    )
    assert normalize_dump(raw) == "CREATE TABLE public.t (\n    a integer\n);\n"


def test_dependency_order_puts_referenced_objects_first_and_breaks_ties_by_kind() -> None:
    graph = DependencyGraph()
    view = graph.add(Node(("pg_class", 30), RANK_VIEW, "public", "a_view"))
    table = graph.add(Node(("pg_class", 20), RANK_TABLE, "public", "z_table"))
    func = graph.add(Node(("pg_proc", 10), RANK_FUNCTION, "public", "f"))
    schema = graph.add(Node(("pg_namespace", 5), RANK_SCHEMA, "", "public"))
    graph.alias(("pg_rewrite", 31), view.key)
    # a SQL-standard function body reads the table; the view calls the function
    graph.edges |= {(func.key, table.key), (view.key, func.key)}
    assert [n.key for n in graph.ordered()] == [schema.key, table.key, func.key, view.key]
    assert graph.resolve(("pg_rewrite", 31)) == view.key


def test_dependency_cycle_still_emits_every_node_once() -> None:
    graph = DependencyGraph()
    a = graph.add(Node(("pg_class", 1), RANK_TABLE, "s", "a"))
    b = graph.add(Node(("pg_proc", 2), RANK_FUNCTION, "s", "b"))
    graph.edges |= {(a.key, b.key), (b.key, a.key)}
    assert sorted(n.key for n in graph.ordered()) == sorted([a.key, b.key])


# --- against real servers -----------------------------------------------------------------------


async def _read(url: DbUrl) -> SchemaDump:
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await read_schema(conn)
    finally:
        await conn.close()


async def _restore(dump: SchemaDump, source: DbUrl, target: DbUrl) -> None:
    conn = await asyncpg.connect(**target.connect_kwargs())
    try:
        async with conn.transaction():
            await copy_through(dump, source, conn)
    finally:
        await conn.close()


def _diff(a: str, b: str) -> str:
    return "".join(
        difflib.unified_diff(
            a.splitlines(keepends=True), b.splitlines(keepends=True), "source", "restored", n=2
        )
    )


def _round_trip(source_server, target_server, make_db) -> tuple[SchemaDump, DbUrl, DbUrl]:  # type: ignore[no-untyped-def]
    """Fixture → source; read_schema (through JSON) + COPY → target; compare pg_dump and data.

    Across major versions the server deparses views differently (and 18 names NOT NULL
    constraints), so the expected schema is then what pg_dump's own script gives on the target
    version: the source's pg_dump script loaded into a third database on the target server.
    """
    source = make_db(source_server)
    load_fixture(source_server, source.database)
    target = make_db(target_server)
    dump = asyncio.run(_read(source))
    dump = SchemaDump.from_json(json.loads(json.dumps(dump.to_json())))
    asyncio.run(_restore(dump, source, target))
    bindir = newest_pg_dump_bindir()
    if source_server.major != target_server.major:
        before = expected_schema_text(source, target_server, make_db(target_server), bindir)
    else:
        before = schema_text(bindir, source)
    after = schema_text(bindir, target)
    assert before == after, "pg_dump --schema-only differs after restore:\n" + _diff(before, after)
    digest_before, digest_after = data_digest(source), data_digest(target)
    assert digest_before == digest_after
    return dump, source, target


@pytest.mark.postgres
def test_pg15_schema_and_data_survive_a_catalog_round_trip(pg15, make_db) -> None:  # type: ignore[no-untyped-def]
    dump, _, _ = _round_trip(pg15, pg15, make_db)
    _check_dump_contents(dump)


@pytest.mark.postgres
@pytest.mark.pg18
def test_pg18_schema_and_data_survive_a_catalog_round_trip(pg18, make_db) -> None:  # type: ignore[no-untyped-def]
    dump, _, _ = _round_trip(pg18, pg18, make_db)
    _check_dump_contents(dump)


@pytest.mark.postgres
@pytest.mark.pg18
def test_pg15_schema_restores_identically_on_pg18(pg15, pg18, make_db) -> None:  # type: ignore[no-untyped-def]
    _round_trip(pg15, pg18, make_db)


def _check_dump_contents(dump: SchemaDump) -> None:
    tables = {t.qualified: t for t in dump.tables}
    # Leaf partitions are copied; partitioned parents, views and matviews are not.
    assert "public.events_2024_login" in tables and "public.events_default" in tables
    assert "public.events" not in tables and "public.events_2024" not in tables
    assert "public.user_orders" not in tables and "public.order_totals" not in tables
    # Dropped and generated columns are not copied; order is attnum order.
    assert tables["public.with_dropped"].columns == ("a", "b", "c")
    assert "doubled" not in tables['"order"."order"'].columns
    assert tables["public.scratch"].persistence == "u"
    assert tables['"App Data"."User Accounts"'].columns[:2] == ("id", "Select")
    assert set(dump.schemas) >= {"App Data", "order", "audit", "public"}
    assert set(dump.extensions) == {"btree_gist", "citext"}
    seqs = {(s.schema, s.name): s for s in dump.sequences}
    invoice = seqs[("public", "invoice_no")]  # CACHE 3: last_value runs ahead of use
    assert invoice.is_called and invoice.last_value >= 1000 + 4 * 7
    assert seqs[("App Data", "User Accounts_id_seq")].last_value == 110
    assert seqs[("order", "Unused Seq")].is_called is False
    assert dump.refresh == (
        "REFRESH MATERIALIZED VIEW public.order_totals",
        "REFRESH MATERIALIZED VIEW public.order_totals_2",
    )
    assert dump.large_objects == 0
    assert all(not s.rstrip().endswith(";") for s in dump.pre_data + dump.post_data)


@pytest.mark.postgres
def test_objects_out_of_scope_are_refused_with_one_clear_sentence(pg15, make_db) -> None:  # type: ignore[no-untyped-def]
    url = make_db(pg15)
    pg15.psql(
        "CREATE FUNCTION public.eq3(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 = $2';"
        "CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.eq3);",
        database=url.database,
    )
    with pytest.raises(UnsupportedSchema, match="operator"):
        asyncio.run(_read(url))


@pytest.mark.postgres
def test_an_empty_database_needs_no_statements(pg15, make_db) -> None:  # type: ignore[no-untyped-def]
    dump = asyncio.run(_read(make_db(pg15)))
    assert dump.pre_data == () and dump.post_data == () and dump.tables == ()
    assert dump.schemas == () and dump.sequences == () and dump.large_objects == 0


@pytest.mark.postgres
def test_large_objects_are_counted(pg15, make_db) -> None:  # type: ignore[no-untyped-def]
    url = make_db(pg15)
    pg15.psql("SELECT lo_create(0); SELECT lo_create(0);", database=url.database)
    assert asyncio.run(_read(url)).large_objects == 2
