"""The fidelity harness itself (tests/fidelity.py): a difference it is meant to see, it names.

"0 differences" from the corpus tests means something only if the comparison catches what a
restore can lose: an access method, a statistics target, an owner, a grant, a row, a sequence
position, a large object's bytes.
"""

from __future__ import annotations

import pytest

from tests.fidelity import compare_databases, split_toc

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE ROLE mmops_fid_harness_owner NOLOGIN;
CREATE ACCESS METHOD harness_am TYPE TABLE HANDLER heap_tableam_handler;
CREATE TABLE public.t (id int PRIMARY KEY, v text);
CREATE TABLE public.on_am (id int) USING harness_am;
CREATE SEQUENCE public.s;
SELECT setval('public.s', 5);
INSERT INTO public.t VALUES (1, 'a'), (2, NULL);
SELECT lo_from_bytea(777001, 'bytes');
"""


def test_split_toc_names_entries_keeps_access_methods_and_drops_owner_lines() -> None:
    script = "\n".join([
        "SET statement_timeout = 0;",
        "--", "-- Name: t; Type: TABLE; Schema: public; Owner: alice", "--",
        "SET default_table_access_method = harness_am;",
        "CREATE TABLE public.t (id integer);",
        "ALTER TABLE public.t OWNER TO alice;",
        "--", "-- Name: TABLE t; Type: ACL; Schema: public; Owner: alice", "--",
        "GRANT SELECT ON TABLE public.t TO bob;",
        "--", "-- Name: TABLE t; Type: ACL; Schema: public; Owner: alice", "--",
        "\\unrestrict abc",
        "GRANT SELECT ON TABLE public.t TO carol;",
    ])
    entries = split_toc(script)
    assert list(entries) == ["TABLE public.t", "ACL ON TABLE t (schema public)",
                             "ACL ON TABLE t (schema public) #2"]
    table = entries["TABLE public.t"]
    assert table.owner == "alice"
    assert table.sql == ("SET default_table_access_method = harness_am;\n"
                         "CREATE TABLE public.t (id integer);")
    assert entries["ACL ON TABLE t (schema public) #2"].sql == (
        "GRANT SELECT ON TABLE public.t TO carol;")


def test_compare_databases_names_every_kind_of_loss(pg15, make_db) -> None:
    pg15.psql("DROP ROLE IF EXISTS mmops_fid_harness_owner")
    expected, got = make_db(pg15), make_db(pg15)
    try:
        for db in (expected, got):
            pg15.psql(SCHEMA.replace("CREATE ROLE mmops_fid_harness_owner NOLOGIN;", "")
                      if db is got else SCHEMA, database=db.database)
        assert compare_databases(expected, got) == []

        pg15.psql("""
            ALTER TABLE public.t OWNER TO mmops_fid_harness_owner;
            GRANT SELECT ON public.t TO PUBLIC;
            ALTER TABLE public.t ALTER COLUMN v SET STATISTICS 77;
        """, database=expected.database)
        pg15.psql("""
            ALTER TABLE public.on_am SET ACCESS METHOD heap;
            UPDATE public.t SET v = 'changed' WHERE id = 1;
            SELECT setval('public.s', 6);
            SELECT lo_put(777001, 0, 'B');
            CREATE VIEW public.extra AS SELECT 1 AS one;
        """, database=got.database)
        diffs = compare_databases(expected, got)
        text = "\n".join(diffs)
        assert "owner: TABLE public.t: expected mmops_fid_harness_owner, got postgres" in diffs
        assert "missing: ACL ON TABLE t (schema public) (owner mmops_fid_harness_owner)" in diffs
        assert "differs: TABLE public.t\n" in text and "SET STATISTICS 77" in text
        assert "differs: TABLE public.on_am\n" in text and "harness_am" in text
        assert "extra: VIEW public.extra (owner postgres)" in diffs
        assert any(d.startswith('rows: table "public"."t": expected 2:') for d in diffs)
        assert 'rows: sequence "public"."s": expected 5,True, got 6,True' in diffs
        assert any(d.startswith("large object: 777001: expected 5:") for d in diffs)
    finally:
        pg15.dropdb(expected.database)  # the only database where the role owns something
        pg15.psql("DROP ROLE IF EXISTS mmops_fid_harness_owner")
