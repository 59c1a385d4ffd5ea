"""The schema from pg_dump: pg_restore's script made runnable in our transaction, the roles it
names, the failing object named, names that need quoting, and a refusal before anything
changes when owners or grantees are missing (real PostgreSQL, real pg_dump/pg_restore)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ops.engine.backup import backup
from ops.engine.pg_script import roles_named, runnable_script
from ops.engine.restore import restore
from ops.engine.results import RestoreMode
from ops.errors import RestoreFailed, RestoreRefused
from tests.fidelity import compare_databases, data_digest, schema_text

FRAMED = b"""--
-- PostgreSQL database dump
--

\\restrict abcDEF123

BEGIN;

SET statement_timeout = 0;
SET lock_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $$
SET lock_timeout = 0;
COMMIT;
$$;
CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (connect = false, \
slot_name = 's', run_as_owner = true, origin = any);

COMMIT;

--
-- PostgreSQL database dump complete
--

\\unrestrict abcDEF123

"""


def test_runnable_script_drops_only_the_framing_and_our_settings() -> None:
    text = runnable_script(FRAMED, target_version=150000)
    lines = text.splitlines()
    assert "\\restrict abcDEF123" not in lines and "\\unrestrict abcDEF123" not in lines
    assert "BEGIN;" not in lines
    # The prelude's timeouts go (ours stay in force); the function body keeps its own text.
    assert lines.count("SET lock_timeout = 0;") == 1
    assert "SET transaction_timeout = 0;" not in lines
    assert "SET check_function_bodies = false;" in lines
    assert lines.count("COMMIT;") == 1  # the body's; pg_restore's own went
    assert text.rstrip().endswith("origin = any);")
    assert "run_as_owner" not in text  # PostgreSQL 15 does not know the option
    assert "run_as_owner = true" in runnable_script(FRAMED, target_version=160000)


def test_a_script_without_its_transaction_framing_is_refused() -> None:
    with pytest.raises(RestoreRefused, match="does not start a transaction"):
        runnable_script(b"CREATE TABLE t (a int);\nCOMMIT;\n")
    with pytest.raises(RestoreRefused, match="does not end its transaction"):
        runnable_script(b"BEGIN;\nCREATE TABLE t (a int);\n")


def test_roles_named_reads_owners_and_grantees_with_quoted_names() -> None:
    named = roles_named(
        'ALTER TABLE public."x TO y" OWNER TO "Migration Owner";\n'
        "ALTER FUNCTION public.f() OWNER TO app_owner;\n"
        'GRANT SELECT ON TABLE public."x TO y" TO app, "Read Only";\n'
        "GRANT SELECT(a) ON TABLE public.t TO PUBLIC;\n"
        "REVOKE ALL ON SCHEMA public FROM reporter;\n"
        "ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT SELECT ON TABLES TO "
        "app;\n"
    )
    assert named.owners == {"Migration Owner", "app_owner"}
    assert named.grantees == {"app", "Read Only", "reporter", "app_owner"}




def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.postgres
def test_objects_the_old_engine_refused_round_trip_exactly(pg15: Any, make_db: Any,
                                                           tmp_path: Path) -> None:
    src, dst = make_db(pg15), make_db(pg15)
    pg15.psql(
        "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', "
        "deterministic = false);"
        "CREATE TEXT SEARCH CONFIGURATION public.en (COPY = pg_catalog.english);"
        "CREATE FUNCTION public.eq3(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 = $2';"
        "CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.eq3);"
        "CREATE TABLE public.t (id int PRIMARY KEY, v int, name text COLLATE public.ci);"
        "CREATE VIEW public.w AS SELECT id, v FROM public.t GROUP BY id;"  # needs the key
        "CREATE PUBLICATION pub FOR TABLE public.t;"
        "CREATE FUNCTION public.noop() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$BEGIN END$$;"
        "CREATE EVENT TRIGGER et ON ddl_command_end EXECUTE FUNCTION public.noop();"
        "INSERT INTO public.t VALUES (1, 2, 'A'), (2, 3, 'b');",
        src.database,
    )
    result = _run(backup(src, tmp_path / "b.mmops"))
    _run(restore(dst, Path(result.path), mode=RestoreMode.CREATE))
    assert compare_databases(src, dst) == []


@pytest.mark.postgres
def test_names_with_dots_quotes_spaces_and_unicode_round_trip_in_every_mode(
    pg15: Any, make_db: Any, tmp_path: Path
) -> None:
    src, dst = make_db(pg15), make_db(pg15)
    long = "l" * 63
    pg15.psql(
        'CREATE SCHEMA "a.b"; CREATE TABLE "a.b"."c.d" (id serial PRIMARY KEY, "x""y" text);'
        f'CREATE TABLE "a.b"."Sp ace ü" (id int PRIMARY KEY); CREATE TABLE public.{long} (a int);'
        'INSERT INTO "a.b"."c.d" ("x""y") VALUES (\'1\'), (\'2\');'
        'INSERT INTO "a.b"."Sp ace ü" VALUES (7);',
        src.database,
    )
    path = Path(_run(backup(src, tmp_path / "b.mmops")).path)
    _run(restore(dst, path, mode=RestoreMode.CREATE))
    assert data_digest(dst) == data_digest(src)
    pg15.psql('INSERT INTO "a.b"."c.d" ("x""y") VALUES (\'3\');', dst.database)
    _run(restore(dst, path, mode=RestoreMode.REPLACE))
    assert data_digest(dst) == data_digest(src)
    pg15.psql('DELETE FROM "a.b"."c.d";', dst.database)
    _run(restore(dst, path, mode=RestoreMode.DATA_ONLY, tables=['"a.b"."c.d"']))
    assert data_digest(dst) == data_digest(src)


@pytest.mark.postgres
def test_a_refused_statement_is_named_and_the_target_is_unchanged(
    pg15: Any, make_db: Any, tmp_path: Path
) -> None:
    src, dst = make_db(pg15), make_db(pg15)
    pg15.psql(
        "CREATE TABLE public.a (id int); CREATE TABLE public.b (id int);"
        "CREATE FUNCTION public.clash() RETURNS int LANGUAGE sql AS 'SELECT 1';"
        "CREATE TABLE public.c (id int);",
        src.database,
    )
    path = Path(_run(backup(src, tmp_path / "b.mmops")).path)
    # The target is empty of tables (create mode accepts it) but has the function already.
    pg15.psql("CREATE FUNCTION public.clash() RETURNS int LANGUAGE sql AS 'SELECT 2';",
              dst.database)
    before = schema_text(pg15, dst)
    with pytest.raises(RestoreFailed) as caught:
        _run(restore(dst, path, mode=RestoreMode.CREATE))
    message = str(caught.value)
    assert "FUNCTION public.clash()" in message and "already exists" in message
    assert "rolled back" in message
    assert schema_text(pg15, dst) == before


@pytest.mark.postgres
def test_missing_roles_are_refused_before_anything_changes_unless_no_owner(
    pg15: Any, make_db: Any, tmp_path: Path
) -> None:
    src, dst = make_db(pg15), make_db(pg15)
    pg15.psql(
        "DROP ROLE IF EXISTS mmops_gone_owner; DROP ROLE IF EXISTS mmops_gone_reader;"
        "CREATE ROLE mmops_gone_owner; CREATE ROLE mmops_gone_reader;",
        src.database,
    )
    pg15.psql(
        "CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);"
        "ALTER TABLE public.t OWNER TO mmops_gone_owner;"
        "GRANT SELECT ON public.t TO mmops_gone_reader;",
        src.database,
    )
    path = Path(_run(backup(src, tmp_path / "b.mmops")).path)
    pg15.psql("DROP TABLE public.t; DROP ROLE mmops_gone_owner; DROP ROLE mmops_gone_reader;",
              src.database)
    with pytest.raises(RestoreRefused) as caught:
        _run(restore(dst, path, mode=RestoreMode.CREATE))
    message = str(caught.value)
    assert "mmops_gone_owner" in message and "mmops_gone_reader" in message
    assert "--no-owner" in message and "--no-privileges" in message
    assert caught.value.exit_code == 8
    with pytest.raises(RestoreRefused, match="mmops_gone_reader"):
        _run(restore(dst, path, mode=RestoreMode.CREATE, no_owner=True))
    result = _run(restore(dst, path, mode=RestoreMode.CREATE, no_owner=True,
                          no_privileges=True))
    assert result.total_rows == 1

    async def owner() -> str:
        conn = await asyncpg.connect(**dst.connect_kwargs())
        try:
            return str(await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE tablename = 't'"))
        finally:
            await conn.close()

    assert _run(owner()) == dst.username
