"""Old JSON backups (production_backup_*.json) restored into a migrated database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

import ops.interop.legacy_json_reader as reader
from ops.errors import ArchiveError, RestoreFailed, RestoreRefused
from ops.interop.json_coercion import CoercionError, ColumnType, coercer_for
from ops.interop.legacy_json import LegacyRestoreResult, looks_like_legacy_json, restore_legacy_json

# --------------------------------------------------------------------------- pure parts


def test_values_are_coerced_by_the_target_type():
    ts = coercer_for(ColumnType("timestamptz"))
    assert ts("2024-01-02T03:04:05.123456+00:00") == dt.datetime(
        2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc
    )
    assert ts("2024-01-02T03:04:05Z").tzinfo is not None
    assert ts(None) is None
    assert coercer_for(ColumnType("timestamp"))("2024-01-02T04:04:05+01:00") == dt.datetime(
        2024, 1, 2, 3, 4, 5
    )
    assert coercer_for(ColumnType("date"))("2024-02-29") == dt.date(2024, 2, 29)
    assert coercer_for(ColumnType("int8"))(Decimal("3")) == 3
    assert coercer_for(ColumnType("numeric"))(Decimal("1.10")) == Decimal("1.10")
    assert coercer_for(ColumnType("bool"))("t") is True
    assert coercer_for(ColumnType("uuid"))(str(uuid.UUID(int=5))) == uuid.UUID(int=5)
    assert json.loads(coercer_for(ColumnType("jsonb"))({"a": [1, Decimal("2.5")]})) == {
        "a": [1, 2.5]
    }
    assert coercer_for(ColumnType("jsonb"))('{"a": 1}') == '{"a": 1}'
    assert coercer_for(ColumnType("jsonb"))("plain") == '"plain"'
    assert coercer_for(ColumnType("text", is_array=True))(["a", None, "b c"]) == ["a", None, "b c"]
    assert coercer_for(ColumnType("bytea"))("\\x00ff") == b"\x00\xff"
    assert coercer_for(ColumnType("bytea"))("AP8=") == b"\x00\xff"


@pytest.mark.parametrize(
    ("base", "value"),
    [
        ("timestamptz", "not-a-date"),
        ("int4", 2**31),
        ("int4", True),
        ("int4", "1.5"),
        ("date", "2024-02-30"),
        ("bool", "maybe"),
        ("uuid", "xyz"),
        ("text", {"an": "object"}),
    ],
)
def test_values_that_do_not_fit_raise_a_short_reason(base, value):
    with pytest.raises(CoercionError):
        coercer_for(ColumnType(base))(value)


def old_script_file(path: Path, tables: dict, *, when="2024-05-01T12:00:00") -> Path:
    """Write a file exactly like the old backup script: json.dump with an isoformat default."""

    def default(o):
        if isinstance(o, dt.datetime | dt.date | dt.time):
            return o.isoformat()
        if isinstance(o, Decimal):
            return float(o)
        if isinstance(o, uuid.UUID):
            return str(o)
        raise TypeError(type(o))

    doc = {"backup_timestamp": when, "database_url": "db.internal:5432/markdown", "tables": tables}
    path.write_text(json.dumps(doc, default=default, indent=2, ensure_ascii=False))
    return path


def test_the_reader_streams_tables_across_tiny_buffers(tmp_path, monkeypatch):
    rows_ = [
        {"id": i, "t": "żółć " * (i % 5), "n": 1.25 * i, "j": {"k": [i, None]}} for i in range(50)
    ]
    path = old_script_file(
        tmp_path / "b.json", {"a": rows_, "broken": {"error": "boom", "data": []}, "e": []}
    )
    monkeypatch.setattr(reader, "_CHUNK", 7)
    found = reader.scan(path)
    assert [t for t in found.tables] == ["a", "broken", "e"]
    assert found.tables["a"].rows == 50 and list(found.tables["a"].keys) == ["id", "t", "n", "j"]
    assert found.tables["broken"].error == "boom"
    assert list(reader.rows(path, found.tables["a"]))[49]["t"] == "żółć " * 4
    assert list(reader.rows(path, found.tables["e"])) == []


def test_a_truncated_file_is_an_archive_error(tmp_path):
    path = old_script_file(tmp_path / "b.json", {"a": [{"id": 1}, {"id": 2}]})
    path.write_text(path.read_text()[:-20])
    with pytest.raises(ArchiveError, match="truncated|invalid JSON"):
        reader.scan(path)


def test_sniffing(tmp_path):
    assert looks_like_legacy_json(old_script_file(tmp_path / "b.json", {}))
    (tmp_path / "d.sql").write_text("--\n-- PostgreSQL database dump\n--\nSET x = 1;\n")
    (tmp_path / "other.json").write_text('{"name": "package"}')
    (tmp_path / "manifest.json").write_text('{"format": 1, "tables": [{"name": "users"}]}')
    assert not looks_like_legacy_json(tmp_path / "manifest.json")
    assert not looks_like_legacy_json(tmp_path / "d.sql")
    assert not looks_like_legacy_json(tmp_path / "other.json")


# --------------------------------------------------------------------------- real PostgreSQL

SCHEMA = """
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('4f2a9c1d7e80');
CREATE TABLE users (
    id serial PRIMARY KEY,
    email varchar(255) NOT NULL UNIQUE,
    display_name text,
    is_active boolean NOT NULL DEFAULT true,
    settings jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE documents (
    id serial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id),
    title varchar(255) NOT NULL,
    content text,
    tags text[],
    meta jsonb,
    share_token uuid,
    score numeric(10, 3),
    published_on date,
    created_at timestamptz NOT NULL,
    updated_at timestamp
);
CREATE TABLE custom_dictionaries (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id integer REFERENCES users (id),
    words text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE document_recovery (
    id serial PRIMARY KEY,
    document_id integer REFERENCES documents (id),
    content text,
    recovered_at timestamptz
);
CREATE TABLE folders (id serial PRIMARY KEY, name text);
"""

UTC = dt.timezone.utc
USERS = [
    {"id": 3, "email": "ann@example.org", "display_name": "Ann", "is_active": True,
     "settings": {"theme": "dark", "sizes": [1, 2.5]},
     "created_at": dt.datetime(2023, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)},
    {"id": 7, "email": "zoë@example.org", "display_name": None, "is_active": False,
     "settings": None, "created_at": dt.datetime(2023, 6, 1, tzinfo=UTC)},
]  # fmt: skip
DOCUMENTS = [
    {"id": 10, "user_id": 7, "title": "Notes; with \"quotes\"", "content": "line1\n\\.\ttab ✓",
     "tags": ["a", "b c"], "meta": {"k": {"nested": [True, None]}},
     "share_token": uuid.UUID(int=42),
     "score": Decimal("12.500"), "published_on": dt.date(2024, 2, 29),
     "created_at": dt.datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
     "updated_at": dt.datetime(2024, 3, 2, 9, 30)},
    {"id": 12, "user_id": 3, "title": "Empty", "content": "", "tags": [], "meta": {},
     "share_token": None, "score": None, "published_on": None,
     "created_at": dt.datetime(2024, 3, 3, tzinfo=UTC), "updated_at": None},
]  # fmt: skip
DICTIONARIES = [{"id": 5, "user_id": 3, "words": ["markdown", "asyncpg"]}]


def backup_tables(**changes) -> dict:
    # documents before users on purpose: the load order must come from the catalog
    tables = {
        "documents": DOCUMENTS,
        "alembic_version": [{"version_num": "4f2a9c1d7e80"}],
        "custom_dictionaries": DICTIONARIES,
        "document_recovery": {"error": "relation \"document_recovery\" does not exist", "data": []},
        "users": USERS,
        "folders": [],
    }
    tables.update(changes)
    return tables


async def connect(url) -> asyncpg.Connection:
    return await asyncpg.connect(**url.connect_kwargs())


@pytest.fixture
def migrated(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(SCHEMA, url.database)
    return url


async def restore_like_the_caller(url, path: Path, **kw) -> LegacyRestoreResult:
    """What ``mmops restore`` does: one transaction with a lock_timeout, commit at the end."""
    conn = await connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            return await restore_legacy_json(conn, path, **kw)
    finally:
        await conn.close()


async def table_rows(url, table: str) -> list[dict]:
    conn = await connect(url)
    try:
        return [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY id")]
    finally:
        await conn.close()


def as_json_like(rows_: list[dict]) -> list[dict]:
    out = []
    for r in rows_:
        r = dict(r)
        for k in ("settings", "meta"):
            if isinstance(r.get(k), str):
                r[k] = json.loads(r[k])
        out.append(r)
    return out


@pytest.mark.postgres
def test_old_backup_restores_rows_in_fk_order_and_sequences_move_past_ids(migrated, tmp_path):
    path = old_script_file(tmp_path / "production_backup_20240501_120000.json", backup_tables())
    result = asyncio.run(restore_like_the_caller(migrated, path))

    assert {t.table: t.rows for t in result.tables} == {
        "public.users": 2, "public.documents": 2, "public.custom_dictionaries": 1,
        "public.folders": 0,
    }  # fmt: skip
    order = [t.table for t in result.tables]
    assert order.index("public.users") < order.index("public.documents")
    assert result.skipped_tables == ("document_recovery",)
    assert any("document_recovery" in w and "does not exist" in w for w in result.warnings)
    assert result.alembic_revision_backup == result.alembic_revision_live == "4f2a9c1d7e80"
    assert result.source_database == "db.internal:5432/markdown"

    assert as_json_like(asyncio.run(table_rows(migrated, "users"))) == USERS
    docs = as_json_like(asyncio.run(table_rows(migrated, "documents")))
    assert docs == DOCUMENTS
    assert asyncio.run(table_rows(migrated, "custom_dictionaries")) == DICTIONARIES

    seqs = {s.sequence: (s.value, s.is_called) for s in result.sequences}
    assert seqs["users_id_seq"] == (7, True)
    assert seqs["documents_id_seq"] == (12, True)
    assert seqs["custom_dictionaries_id_seq"] == (5, True)
    assert seqs["folders_id_seq"] == (1, False)

    async def next_inserts():
        conn = await connect(migrated)
        try:
            uid = await conn.fetchval("INSERT INTO users (email) VALUES ('new@x') RETURNING id")
            did = await conn.fetchval(
                "INSERT INTO documents (user_id, title, created_at) VALUES ($1, 'n', now()) "
                "RETURNING id",
                uid,
            )
            cid = await conn.fetchval(
                "INSERT INTO custom_dictionaries (user_id) VALUES ($1) RETURNING id", uid
            )
            fid = await conn.fetchval("INSERT INTO folders (name) VALUES ('f') RETURNING id")
            return uid, did, cid, fid
        finally:
            await conn.close()

    assert asyncio.run(next_inserts()) == (8, 13, 6, 1)


@pytest.mark.postgres
def test_existing_rows_are_replaced_not_merged(migrated, tmp_path):
    migrated_rows = "INSERT INTO users (id, email) VALUES (1, 'old@x'), (3, 'clash@x');"

    async def seed():
        conn = await connect(migrated)
        try:
            await conn.execute(migrated_rows)
        finally:
            await conn.close()

    asyncio.run(seed())
    path = old_script_file(tmp_path / "b.json", backup_tables())
    asyncio.run(restore_like_the_caller(migrated, path))
    assert [u["email"] for u in asyncio.run(table_rows(migrated, "users"))] == [
        "ann@example.org", "zoë@example.org",
    ]  # fmt: skip


@pytest.mark.postgres
def test_an_alembic_mismatch_is_refused_unless_forced(migrated, tmp_path):
    path = old_script_file(
        tmp_path / "b.json", backup_tables(alembic_version=[{"version_num": "0000older000"}])
    )
    with pytest.raises(RestoreRefused, match=r"revision 0000older000 but the database is at 4f2a"):
        asyncio.run(restore_like_the_caller(migrated, path))
    assert asyncio.run(table_rows(migrated, "users")) == []

    result = asyncio.run(restore_like_the_caller(migrated, path, force=True))
    assert result.total_rows == 5
    assert any("0000older000" in w for w in result.warnings)
    # compared, never overwritten
    assert asyncio.run(table_rows_alembic(migrated)) == ["4f2a9c1d7e80"]


async def table_rows_alembic(url) -> list[str]:
    conn = await connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()


@pytest.mark.postgres
def test_a_bad_value_names_table_and_column_and_leaves_the_target_unchanged(migrated, tmp_path):
    async def seed():
        conn = await connect(migrated)
        try:
            await conn.execute("INSERT INTO users (email) VALUES ('keep@me')")
        finally:
            await conn.close()

    asyncio.run(seed())
    bad_docs = [dict(DOCUMENTS[0]), {**DOCUMENTS[1], "created_at": "not-a-date"}]
    path = old_script_file(tmp_path / "b.json", backup_tables(documents=bad_docs))
    with pytest.raises(RestoreFailed, match=r"Row 1 of table documents, column created_at: "
                       r"its value \(a JSON str, not shown\) does not fit timestamp with "
                       r"time zone") as info:  # fmt: skip
        asyncio.run(restore_like_the_caller(migrated, path))
    assert "not-a-date" not in str(info.value)  # a row's values never reach a terminal or log
    assert [u["email"] for u in asyncio.run(table_rows(migrated, "users"))] == ["keep@me"]
    assert asyncio.run(table_rows(migrated, "documents")) == []

    # a value only the server can judge (too long for varchar(255)) is named the same way
    long_docs = [{**DOCUMENTS[0], "title": "x" * 300}]
    path = old_script_file(tmp_path / "c.json", backup_tables(documents=long_docs))
    with pytest.raises(RestoreFailed, match=r"row 1 of table documents \(column title\)") \
            as info:
        asyncio.run(restore_like_the_caller(migrated, path))
    assert "xxxxxxxx" not in str(info.value)
    assert [u["email"] for u in asyncio.run(table_rows(migrated, "users"))] == ["keep@me"]


@pytest.mark.postgres
def test_unknown_tables_and_columns_are_refused_by_name(migrated, tmp_path):
    path = old_script_file(tmp_path / "a.json", backup_tables(old_stuff=[{"id": 1}]))
    with pytest.raises(RestoreRefused, match="table old_stuff, which does not exist"):
        asyncio.run(restore_like_the_caller(migrated, path))
    users = [{**USERS[0], "legacy_flag": 1}]
    path = old_script_file(tmp_path / "b.json", backup_tables(users=users, documents=[]))
    with pytest.raises(RestoreRefused, match=r"column users\.legacy_flag"):
        asyncio.run(restore_like_the_caller(migrated, path))
    result = asyncio.run(restore_like_the_caller(migrated, path, force=True))
    assert any("users.legacy_flag" in w for w in result.warnings)


@pytest.mark.postgres
def test_tables_outside_the_file_that_reference_it_with_rows_are_refused(migrated, tmp_path):
    async def seed():
        conn = await connect(migrated)
        try:
            await conn.execute(
                "INSERT INTO users (id, email) VALUES (1, 'a@x');"
                "INSERT INTO documents (id, user_id, title, created_at) VALUES (1, 1, 't', now());"
                "INSERT INTO document_recovery (document_id) VALUES (1);"
            )
        finally:
            await conn.close()

    asyncio.run(seed())
    path = old_script_file(tmp_path / "b.json", backup_tables())
    with pytest.raises(RestoreRefused, match=r"document_recovery is not restored .* but holds"):
        asyncio.run(restore_like_the_caller(migrated, path))
    assert len(asyncio.run(table_rows(migrated, "documents"))) == 1


SAMPLE = (
    Path(__file__).parent.parent / "fixtures" / "legacy" / "production_backup_20240501_120000.json"
)


@pytest.fixture(params=["pg15", pytest.param("pg18", marks=pytest.mark.pg18)])
def app_db(request, make_db):
    """An empty database migrated by the sandbox app's real alembic migrations (15 and 18)."""
    from ops.sandbox.app.migrate import migrate

    url = make_db(request.getfixturevalue(request.param))
    asyncio.run(migrate(url))
    return url


@pytest.mark.postgres
def test_the_sample_old_backup_restores_into_the_app_schema(app_db):
    assert looks_like_legacy_json(SAMPLE)
    result = asyncio.run(restore_like_the_caller(app_db, SAMPLE))
    assert {t.table: t.rows for t in result.tables} == {
        "public.users": 2, "public.documents": 2, "public.custom_dictionaries": 1,
    }  # fmt: skip
    assert result.alembic_revision_backup == "0003_document_word_count"
    assert result.skipped_tables == ("document_recovery",)

    async def check():
        conn = await connect(app_db)
        try:
            doc = await conn.fetchrow("SELECT * FROM documents WHERE id = 41")
            assert doc["content"] == "- milk\n- \\. eggs\n\ttabbed ✓"
            assert doc["tags"] == ["home", "to do"]
            assert json.loads(doc["metadata"]) == {
                "pinned": True, "colors": ["red", None], "ratio": 0.75,
            }  # fmt: skip
            assert doc["updated_at"] == dt.datetime(2024, 4, 2, 9, 30, 15, 250000, tzinfo=UTC)
            # identity sequences are past the restored ids: the app's next inserts do not collide
            uid = await conn.fetchval(
                "INSERT INTO users (email, display_name, password_hash) "
                "VALUES ('new@example.org', 'New', 'x') RETURNING id"
            )
            did = await conn.fetchval(
                "INSERT INTO documents (user_id, title) VALUES ($1, 't') RETURNING id", uid
            )
            rid = await conn.fetchval(
                "INSERT INTO document_recovery (document_id, user_id, content) "
                "VALUES ($1, $2, 'c') RETURNING id",
                did, uid,
            )  # fmt: skip
            return uid, did, rid
        finally:
            await conn.close()

    assert asyncio.run(check()) == (6, 58, 1)


def test_copy_text_escapes_values_and_quotes_array_elements():
    from ops.engine.copy_text import copy_line

    line = copy_line(
        ["a\tb\nc\\d", None, True, ["x", None, 'q"uote', ["n"]], b"\x00\xff", Decimal("1.50")]
    )
    assert line == 'a\\tb\\nc\\\\d\t\\N\tt\t{"x",NULL,"q\\\\"uote",{"n"}}\t\\\\x00ff\t1.50\n'


@pytest.mark.postgres
def test_other_column_types_load_through_text_copy(pg15, make_db, tmp_path):
    url = make_db(pg15)
    pg15.psql(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');"
        "CREATE DOMAIN positive AS integer CHECK (VALUE > 0);"
        'CREATE TABLE odd (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Mixed Case" text,'
        " moods mood[], p positive, ip inet, spent interval, twice integer"
        " GENERATED ALWAYS AS (id * 2) STORED);",
        url.database,
    )
    row = {"id": 9, "Mixed Case": "q", "moods": ["happy", "sad"], "p": 3, "ip": "10.1.2.3",
           "spent": str(dt.timedelta(days=1, hours=2)), "twice": 18}  # fmt: skip
    path = old_script_file(tmp_path / "b.json", {"odd": [row]})
    result = asyncio.run(restore_like_the_caller(url, path))
    assert any("odd.twice is generated" in w for w in result.warnings)

    async def check():
        conn = await connect(url)
        try:
            got = dict(await conn.fetchrow("SELECT * FROM odd"))
            next_id = await conn.fetchval("INSERT INTO odd (p) VALUES (1) RETURNING id")
            return got, next_id
        finally:
            await conn.close()

    got, next_id = asyncio.run(check())
    assert got["moods"] == ["happy", "sad"] and got["twice"] == 18
    assert got["spent"] == dt.timedelta(days=1, hours=2) and str(got["ip"]) == "10.1.2.3"
    assert next_id == 10
