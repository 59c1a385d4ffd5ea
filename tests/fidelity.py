"""Helpers that prove a restore is faithful: the fixture, pg_dump schema text, data digests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import asyncpg

from ops.dburl import DbUrl
from ops.sandbox.postgres import PostgresServer, debian_bindir, embedded_bindir

FIXTURE = Path(__file__).parent / "fixtures" / "sharp_schema.sql"

_DROP_LINE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config\(|\\restrict|\\unrestrict)")


def load_fixture(server: PostgresServer, dbname: str, fixture: Path = FIXTURE) -> None:
    """Run the sharp fixture into ``dbname`` (psql, ON_ERROR_STOP)."""
    server.psql(fixture.read_text(encoding="utf-8"), database=dbname)


def expected_schema_text(
    source: DbUrl, target_server: PostgresServer, scratch_db: DbUrl, bindir: Path | None = None
) -> str:
    """What pg_dump's own script of ``source`` becomes on ``target_server`` (schema text).

    Across major versions the server deparses views differently and 18 names NOT NULL
    constraints, so a restore into another major version is compared with this reference
    (pg_dump script loaded into the empty ``scratch_db`` on the target server), not with the
    source itself.
    """
    dump_bindir = bindir or newest_pg_dump_bindir()
    target_server.psql(schema_sql(dump_bindir, source), database=scratch_db.database)
    return schema_text(dump_bindir, scratch_db)


def newest_pg_dump_bindir() -> Path:
    """The newer of the two test servers' bindirs (pg_dump must be >= both servers)."""
    for candidate in (embedded_bindir(), debian_bindir(15)):
        if candidate is not None:
            return candidate
    raise RuntimeError("no PostgreSQL client binaries found")


def normalize_dump(text: str) -> str:
    """Drop comment/SET/set_config/\\restrict lines and collapse runs of blank lines."""
    out: list[str] = []
    for line in text.splitlines():
        if _DROP_LINE.match(line):
            continue
        if not line.strip():
            if out and out[-1] == "":
                continue
            line = ""
        out.append(line)
    return "\n".join(out).strip() + "\n"


def schema_text(server_or_bindir: PostgresServer | Path | None, url: DbUrl) -> str:
    """``pg_dump --schema-only --no-owner --no-privileges``, normalized for comparison."""
    return normalize_dump(schema_sql(server_or_bindir, url))


def schema_sql(server_or_bindir: PostgresServer | Path | None, url: DbUrl) -> str:
    """The raw ``pg_dump --schema-only --no-owner --no-privileges`` script."""
    if isinstance(server_or_bindir, PostgresServer):
        bindir = server_or_bindir.bindir
    elif server_or_bindir is None:
        bindir = newest_pg_dump_bindir()
    else:
        bindir = server_or_bindir
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "PGCONNECT_TIMEOUT": "10",
        **url.to_libpq_env(),
    }
    res = subprocess.run(
        [str(bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {res.stderr.strip()}")
    return res.stdout


_TABLES_SQL = """
SELECT n.nspname, c.relname, c.relkind::text AS relkind
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"
"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def data_digest(url: DbUrl) -> dict[str, str]:
    """Per user table / populated matview: ``rows:sha256`` of its rows as text, sorted.

    A row's text form (``t::text``) tells NULL (empty field) from '' (``""``) and includes
    generated columns. Sequences map to ``last_value,is_called``. Synchronous; inside a running
    event loop use ``data_digest_async``.
    """
    return asyncio.run(data_digest_async(url))


async def data_digest_async(url: DbUrl) -> dict[str, str]:
    """The coroutine behind ``data_digest``."""
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        out: dict[str, str] = {}
        for r in await conn.fetch(_TABLES_SQL):
            name = f"{_q(r['nspname'])}.{_q(r['relname'])}"
            if r["relkind"] == "S":
                row = await conn.fetchrow(f"SELECT last_value, is_called FROM {name}")
                out[f"sequence {name}"] = f"{row['last_value']},{row['is_called']}"
                continue
            if r["relkind"] == "m":
                populated = await conn.fetchval(
                    "SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = $1::regclass",
                    name,
                )
                if not populated:
                    out[f"matview {name}"] = "not populated"
                    continue
            row = await conn.fetchrow(
                "SELECT count(*) AS n, encode(sha256(convert_to(coalesce(string_agg(t::text, "
                "E'\\n' ORDER BY t::text COLLATE \"C\"), ''), 'UTF8')), 'hex') AS h "
                f"FROM ONLY {name} t"
            )
            kind = "matview" if r["relkind"] == "m" else "table"
            out[f"{kind} {name}"] = f"{row['n']}:{row['h']}"
        return out
    finally:
        await conn.close()


async def copy_through(dump: object, source: DbUrl, target_conn: asyncpg.Connection) -> None:
    """Restore a ``SchemaDump`` plus its table data into ``target_conn``'s open transaction.

    pre-data, COPY of every table (read from ``source`` in one REPEATABLE READ snapshot),
    post-data, matview refreshes, setvals — the order a real restore uses.
    """
    import io

    from ops.engine.catalog import SchemaDump

    assert isinstance(dump, SchemaDump)
    await target_conn.execute("SET LOCAL check_function_bodies = off")
    await target_conn.execute("SET LOCAL search_path = ''")
    for stmt in dump.pre_data:
        await _run(target_conn, stmt)
    src = await asyncpg.connect(**source.connect_kwargs())
    try:
        async with src.transaction(isolation="repeatable_read", readonly=True):
            for t in dump.tables:
                buf = io.BytesIO()
                await src.copy_from_table(
                    t.name, schema_name=t.schema, columns=list(t.columns), output=buf
                )
                buf.seek(0)
                await target_conn.copy_to_table(
                    t.name, schema_name=t.schema, columns=list(t.columns), source=buf
                )
    finally:
        await src.close()
    for stmt in (*dump.post_data, *dump.refresh, *(s.setval_sql() for s in dump.sequences)):
        await _run(target_conn, stmt)


async def _run(conn: asyncpg.Connection, stmt: str) -> None:
    try:
        await conn.execute(stmt)
    except asyncpg.PostgresError as exc:
        raise AssertionError(f"statement failed: {exc}\n--- statement ---\n{stmt}") from exc
