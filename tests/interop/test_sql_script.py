"""Plain SQL in: pg_dump plain-format files restored without psql, in one transaction."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest

from ops.errors import ArchiveError, RestoreFailed, RestoreRefused
from ops.interop.script_splitter import CopyData, MetaCommand, ScriptSplitter, Statement
from ops.interop.sql_script import (
    SqlScriptResult,
    looks_like_sql_script,
    parse_copy_target,
    restore_sql_script,
    session_setting_change,
    transaction_refusal,
)
from ops.sandbox.postgres import PostgresServer, debian_bindir, embedded_bindir

# --------------------------------------------------------------------------- splitter (pure)


def split(text: str) -> list:
    out = []
    for item in ScriptSplitter(io.BytesIO(text.encode())):
        if isinstance(item, CopyData):
            out.append(("COPY", item.statement.text, b"".join(item.chunks())))
        elif isinstance(item, MetaCommand):
            out.append(("META", item.name, item.argument))
        else:
            out.append(item.text)
    return out


def test_splitter_keeps_semicolons_inside_quotes_comments_and_dollar_bodies():
    script = (
        "SET a = 'x;y'; SELECT E'it\\'s;', 'a''b;', \"we;ird\"\"q\";\n"
        "/* outer /* nested ; */ still ; */ SELECT 1; -- tail ;\n"
        "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN ';'; END $$;\n"
        "CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql\n"
        "AS $fn$ BEGIN RETURN $$;$$ || ';'; END $fn$;\n"
        "CREATE FUNCTION h(a int) RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n SELECT a;\n SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\nEND;\n"
        "SELECT (1; 2);\n"
    )
    got = split(script)
    assert got == [
        "SET a = 'x;y';",
        "SELECT E'it\\'s;', 'a''b;', \"we;ird\"\"q\";",
        "SELECT 1;",
        "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN ';'; END $$;",
        "CREATE FUNCTION g() RETURNS text LANGUAGE plpgsql\nAS $fn$ BEGIN RETURN $$;$$ || ';'; "
        "END $fn$;",
        "CREATE FUNCTION h(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT a;\n"
        " SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\nEND;",
        "SELECT (1; 2);",
    ]


def test_splitter_streams_copy_data_and_meta_commands():
    script = (
        "\\restrict K1\nCOPY public.t (a, \"B c\") FROM stdin;\n1\tx\\\\.y\n\\\\.\n2\t\\N\n\\.\n"
        "SELECT 2;\n\\unrestrict K1\n"
    )
    assert split(script) == [
        ("META", "restrict", "K1"),
        ("COPY", 'COPY public.t (a, "B c") FROM stdin;', b"1\tx\\\\.y\n\\\\.\n2\t\\N\n"),
        "SELECT 2;",
        ("META", "unrestrict", "K1"),
    ]


def test_copy_data_comes_out_in_bounded_chunks():
    from ops.interop.script_splitter import COPY_CHUNK_BYTES

    line = b"1\t" + b"x" * 1000 + b"\n"
    data = line * 2000  # about 2 MB
    script = b"COPY t (a, b) FROM stdin;\n" + data + b"\\.\nSELECT 1;\n"
    items = iter(ScriptSplitter(io.BytesIO(script)))
    copy = next(items)
    chunks = list(copy.chunks())
    assert b"".join(chunks) == data
    assert len(chunks) > 1 and max(map(len, chunks)) < COPY_CHUNK_BYTES + len(line)
    assert next(items).text == "SELECT 1;"


def test_splitter_reports_truncated_files():
    with pytest.raises(ArchiveError, match="truncated"):
        split("COPY t (a) FROM stdin;\n1\n")
    with pytest.raises(ArchiveError, match="quoted string"):
        split("SELECT 'abc;\n")
    with pytest.raises(ArchiveError, match="no semicolon"):
        split("SELECT 1")


def stmt(text: str) -> Statement:
    (item,) = list(ScriptSplitter(io.BytesIO(text.encode())))
    assert isinstance(item, Statement | CopyData)
    return item if isinstance(item, Statement) else item.statement


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE DATABASE x;",
        "VACUUM ANALYZE t;",
        "ALTER SYSTEM SET work_mem = '1MB';",
        "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a);",
        "DROP INDEX CONCURRENTLY i;",
        "COMMIT;",
        "BEGIN;",
        "COPY t TO '/tmp/x';",
    ],
)
def test_statements_that_cannot_run_in_one_transaction_are_refused(sql):
    assert transaction_refusal(stmt(sql))


@pytest.mark.parametrize(
    "sql", ["CREATE INDEX i ON t (a);", "SET check_function_bodies = false;", "SELECT 1;"]
)
def test_ordinary_statements_are_not_refused(sql):
    assert transaction_refusal(stmt(sql)) is None


def test_session_settings_are_recognised():
    assert session_setting_change(stmt("SET lock_timeout = 0;")).name == "lock_timeout"
    change = session_setting_change(stmt("SELECT pg_catalog.set_config('search_path', '', false);"))
    assert (change.name, change.value) == ("search_path", "")
    assert session_setting_change(stmt("SELECT set_config('x.y', '1', true);")) is None
    assert session_setting_change(stmt("SET LOCAL work_mem = '4MB';")) is None
    assert session_setting_change(stmt("SET client_encoding = 'UTF8';")).value == "UTF8"
    assert session_setting_change(stmt("SET TIME ZONE 'UTC';")).name == "timezone"


def test_copy_targets_are_parsed_with_quoting():
    t = parse_copy_target(stmt('COPY "My Schema"."T""x" (id, "Weird Col") FROM stdin;\n\\.\n'))
    assert (t.schema, t.table, t.columns) == ("My Schema", 'T"x', ("id", "Weird Col"))
    t = parse_copy_target(stmt("COPY public.empty  FROM stdin;\n\\.\n"))
    assert (t.schema, t.table, t.columns) == ("public", "empty", None)
    assert parse_copy_target(stmt("COPY t FROM stdin WITH (FORMAT csv);\n\\.\n")) is None


# --------------------------------------------------------------------------- real dumps

SOURCE_SQL = r"""
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE app.users (
    id serial PRIMARY KEY,
    name text NOT NULL,
    mood app.mood,
    "Weird Col" text
);
CREATE TABLE app.notes (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id integer REFERENCES app.users (id) ON DELETE CASCADE,
    body text,
    tags text[],
    meta jsonb,
    created timestamptz DEFAULT now()
);
CREATE INDEX notes_user_idx ON app.notes (user_id) WHERE body IS NOT NULL;
CREATE TABLE public."Mixed Case" (k text PRIMARY KEY, v bytea);
CREATE SEQUENCE app.counter START 100;
SELECT setval('app.counter', 150);
CREATE FUNCTION app.f_dollar() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN 'semi;colon';
END
$$;
CREATE FUNCTION app.f_tag() RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE x text := $$inner;$$;
BEGIN
    RETURN x || ';' || E'\\.';
END
$fn$;
CREATE FUNCTION app.f_atomic(a integer) RETURNS integer LANGUAGE sql
BEGIN ATOMIC
    SELECT a + 1;
END;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.created := coalesce(NEW.created, now()); RETURN NEW; END $$;
CREATE TRIGGER notes_touch BEFORE INSERT ON app.notes FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE VIEW app.v_named AS
    SELECT u.name, n.body FROM app.users u JOIN app.notes n ON n.user_id = u.id;
CREATE MATERIALIZED VIEW app.mv_counts AS
    SELECT user_id, count(*) AS n FROM app.notes GROUP BY user_id;
COMMENT ON TABLE app.notes IS 'semi;colon ''quoted'' $$dollar$$';

INSERT INTO app.users (name, mood, "Weird Col") VALUES
    ('ann', 'happy', E'tab\there'),
    ('bob', NULL, E'back\\slash'),
    ('żółć 🎉', 'sad', '');
INSERT INTO app.notes (user_id, body, tags, meta, created) VALUES
    (1, E'line1\n\\.\nline3', '{a,"b c",NULL}', '{"k": [1, 2.5, null], "s": "x;y"}',
     '2024-01-02 03:04:05.678901+00'),
    (2, E'\\.', '{}', 'null', '2024-02-29 12:00:00+00'),
    (2, E'carriage\r\nreturn', NULL, '{"nested": {"q": "it''s"}}', NULL),
    (3, NULL, '{"{}"}', '[]', '1999-12-31 23:59:59+00');
INSERT INTO app.notes (user_id, body, tags)
    SELECT 1 + (g % 3), repeat('x', 400) || g, ARRAY[g::text] FROM generate_series(1, 2500) g;
INSERT INTO public."Mixed Case" VALUES ('a', '\x00ff5c2e0a'), ('b', NULL);
REFRESH MATERIALIZED VIEW app.mv_counts;
"""


def pg_dump(server: PostgresServer, bindir: Path, database: str, out: Path, *args: str) -> Path:
    """Run a real pg_dump over the server's unix socket (trust: no password anywhere)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    res = subprocess.run(
        [
            str(bindir / "pg_dump"),
            "-h", str(server.socket_dir), "-p", str(server.port), "-U", server.superuser,
            "-d", database, "--no-owner", "--no-privileges", "-f", str(out), *args,
        ],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


def normalized_schema(text: str) -> list[str]:
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        if re.match(r"\\(un)?restrict ", line) or line.startswith("SET "):
            continue
        if line.startswith("SELECT pg_catalog.set_config("):
            continue
        keep.append(line)
    return keep


async def snapshot(url) -> dict[str, list[str]]:
    """Every table's and matview's rows (as sorted JSON text) plus sequence positions."""
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        rels = await conn.fetch(
            "SELECT c.oid::regclass::text AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1"
        )
        out = {}
        for r in rels:
            rows = await conn.fetch(f"SELECT row_to_json(t)::text AS j FROM {r['name']} t")
            out[r["name"]] = sorted(x["j"] for x in rows)
        seqs = await conn.fetch(
            "SELECT schemaname || '.' || sequencename AS s, last_value FROM pg_sequences ORDER BY 1"
        )
        out["<sequences>"] = [f"{s['s']}={s['last_value']}" for s in seqs]
        return out
    finally:
        await conn.close()


async def restore_in_transaction(url, path: Path, **kw) -> SqlScriptResult:
    """What the caller (``mmops restore``) does: one transaction, a lock_timeout, then commit."""
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            result = await restore_sql_script(conn, path, **kw)
            # the caller's settings survive the script's SETs
            assert await conn.fetchval("SHOW lock_timeout") == "5s"
            assert await conn.fetchval("SHOW search_path") == '"$user", public'
        return result
    finally:
        await conn.close()


def app_relations(url) -> int:
    async def go():
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('app', 'public') AND c.relkind IN ('r', 'S', 'v', 'm')"
            )
        finally:
            await conn.close()

    return asyncio.run(go())


class Dumps:
    """Real plain dumps of the tricky database, made on first use: pg_dump 15 of a 15 server,
    pg_dump 18 of an 18 server (so 15-only runs do not need the 18 server)."""

    def __init__(self, request: pytest.FixtureRequest, out: Path) -> None:
        self._request, self._out, self._files = request, out, {}
        self.made: list[tuple[PostgresServer, str]] = []

    def _make(self, tag: str) -> None:
        server = self._request.getfixturevalue(f"pg{tag}")
        bindir = debian_bindir(15) if tag == "15" else embedded_bindir()
        url = server.createdb(f"sqlsrc{tag}")
        self.made.append((server, url.database))
        server.psql(SOURCE_SQL, url.database)
        self._files[tag] = pg_dump(server, bindir, url.database, self._out / f"dump{tag}.sql")
        self._files[f"src{tag}"] = url

    def __getitem__(self, key: str):
        if key not in self._files:
            self._make(key.removeprefix("src"))
        return self._files[key]


@pytest.fixture(scope="module")
def dumps(request, tmp_path_factory):
    d = Dumps(request, tmp_path_factory.mktemp("dumps"))
    yield d
    for server, name in d.made:
        server.dropdb(name)


def assert_same_database(source_url, target_url, source_server, target_server, tmp_path):
    assert asyncio.run(snapshot(target_url)) == asyncio.run(snapshot(source_url))
    bindir = embedded_bindir() if target_server.major >= 18 else debian_bindir(15)
    src = pg_dump(source_server, bindir, source_url.database, tmp_path / "s.sql", "--schema-only")
    dst = pg_dump(target_server, bindir, target_url.database, tmp_path / "t.sql", "--schema-only")
    assert normalized_schema(dst.read_text()) == normalized_schema(src.read_text())


@pytest.mark.postgres
def test_pg_dump_15_file_restores_into_15_with_same_schema_and_rows(pg15, dumps, make_db, tmp_path):
    text = dumps["15"].read_text()
    assert "COPY app.notes" in text and "AS $_$" in text and "BEGIN ATOMIC" in text
    target = make_db(pg15)
    events = []
    result = asyncio.run(restore_in_transaction(target, dumps["15"], progress=events.append))
    assert {t.table: t.rows for t in result.tables}["app.notes"] == 2504
    assert {e.item for e in events if e.phase == "data"} >= {"app.notes", "app.users"}
    assert events[-1].done == result.bytes_read == dumps["15"].stat().st_size
    assert "app.counter" in result.sequences_set
    assert any("lock_timeout" in s for s in result.skipped)
    assert not [w for w in result.warnings if "pg_dump header" in w], result.warnings
    assert_same_database(dumps["src15"], target, pg15, pg15, tmp_path)


@pytest.mark.postgres
@pytest.mark.pg18
def test_pg_dump_18_file_with_restrict_lines_restores_into_18(pg18, dumps, make_db, tmp_path):
    assert re.search(r"^\\restrict \S+$", dumps["18"].read_text(), re.M)
    target = make_db(pg18)
    result = asyncio.run(restore_in_transaction(target, dumps["18"]))
    assert result.total_rows == 3 + 2504 + 2
    assert_same_database(dumps["src18"], target, pg18, pg18, tmp_path)


@pytest.mark.postgres
@pytest.mark.pg18
def test_pg_dump_15_file_restores_into_18_like_psql_does(pg15, pg18, dumps, make_db, tmp_path):
    # PostgreSQL 18 deparses views differently from 15, so the oracle is psql 18 itself
    # restoring the same file, and the data must still equal the 15 source.
    target = make_db(pg18)
    asyncio.run(restore_in_transaction(target, dumps["15"]))
    reference = make_db(pg18)
    pg18.psql(dumps["15"].read_text(), reference.database)
    assert asyncio.run(snapshot(target)) == asyncio.run(snapshot(dumps["src15"]))
    assert_same_database(reference, target, pg18, pg18, tmp_path)


@pytest.mark.postgres
def test_a_failure_in_the_middle_leaves_the_target_empty(pg15, dumps, make_db, tmp_path):
    text = dumps["15"].read_text()
    # a row that does not fit, after the schema and several tables were already created
    bad = re.sub(r"(COPY app\.users [^\n]*\n)1\t", r"\1not-an-int\t", text, count=1)
    assert bad != text
    path = tmp_path / "bad.sql"
    path.write_text(bad)
    target = make_db(pg15)
    with pytest.raises(RestoreFailed,
                       match=r"app\.users.*line \d+ of bad\.sql.*column id.*invalid text"):
        asyncio.run(restore_in_transaction(target, path))
    assert app_relations(target) == 0

    broken = tmp_path / "broken.sql"
    broken.write_text(text.replace("CREATE VIEW app.v_named", "CREATE VIEW app.v_named_oops AS SELECT nope;\nCREATE VIEW app.v_named", 1))  # noqa: E501
    with pytest.raises(RestoreFailed, match=r"Line \d+ of broken\.sql failed"):
        asyncio.run(restore_in_transaction(target, broken))
    assert app_relations(target) == 0


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("insert", "message"),
    [
        ("VACUUM;\n", r"Line \d+ of .*VACUUM cannot run inside a transaction block"),
        ("\\connect other\n", r"switches database \(\\connect\)"),
        ("CREATE INDEX CONCURRENTLY x ON app.users (name);\n", "CONCURRENTLY"),
    ],
)
def test_refusals_happen_before_anything_runs(pg15, dumps, make_db, tmp_path, insert, message):
    text = dumps["15"].read_text()
    path = tmp_path / "refused.sql"
    path.write_text(text.replace("\n--\n-- PostgreSQL database dump complete", "\n" + insert + "--\n-- PostgreSQL database dump complete"))  # noqa: E501
    target = make_db(pg15)

    async def go():
        conn = await asyncpg.connect(**target.connect_kwargs())
        try:
            async with conn.transaction():
                with pytest.raises(RestoreRefused, match=message):
                    await restore_sql_script(conn, path)
                # nothing was sent: the transaction is still healthy and empty
                assert await conn.fetchval("SELECT to_regnamespace('app')") is None
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.mark.postgres
def test_a_truncated_dump_is_refused_before_anything_runs(pg15, dumps, make_db, tmp_path):
    text = dumps["15"].read_text()
    cut = text[: text.index("COPY app.notes")]  # ends cleanly between statements
    path = tmp_path / "cut.sql"
    path.write_text(cut)
    target = make_db(pg15)
    with pytest.raises(ArchiveError, match="truncated"):
        asyncio.run(restore_in_transaction(target, path))
    assert app_relations(target) == 0


@pytest.mark.postgres
def test_sniffing_tells_sql_from_json_and_binary(tmp_path, dumps):
    assert looks_like_sql_script(dumps["15"])
    (tmp_path / "a.json").write_text('{"tables": {}}')
    (tmp_path / "b.bin").write_bytes(b"\x28\xb5\x2f\xfd\x00\x00")
    (tmp_path / "c.sql").write_text("-- hand written\n\nCREATE TABLE t (a int);\n")
    assert not looks_like_sql_script(tmp_path / "a.json")
    assert not looks_like_sql_script(tmp_path / "b.bin")
    assert looks_like_sql_script(tmp_path / "c.sql")


@pytest.mark.postgres
def test_a_real_dump_missing_its_closing_line_is_refused(pg15, dumps, make_db, tmp_path):
    text = dumps["15"].read_text()
    path = tmp_path / "no-end.sql"
    # Drop only pg_dump's closing comment (pg_dump 15.14+ still ends with \unrestrict).
    path.write_text(text.replace("-- PostgreSQL database dump complete\n", ""))
    target = make_db(pg15)
    with pytest.raises(ArchiveError, match="dump complete"):
        asyncio.run(restore_in_transaction(target, path))
    assert app_relations(target) == 0
