"""Helpers that prove a restore is faithful: the fixtures (the sharp schema, the fidelity corpus),
pg_dump schema text and TOC entries, data digests, the reference and our round trips."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from dataclasses import dataclass
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


# ---- the fidelity corpus and the object-by-object comparison with pg_dump | pg_restore --------

CORPUS_DIR = Path(__file__).parent / "fixtures" / "fidelity"


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus: loaded on servers of major ``min_major`` or later that offer all
    of ``extensions`` (contrib is missing from the pgserver 16 build)."""

    name: str
    min_major: int = 0
    extensions: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return CORPUS_DIR / self.name


CORPUS = (
    CorpusFile("00_roles.sql"),
    CorpusFile("10_corpus.sql"),
    CorpusFile("16_pg16.sql", min_major=16),
    CorpusFile("18_pg18.sql", min_major=18),
    CorpusFile("50_contrib.sql", extensions=("citext", "hstore", "btree_gist", "pg_trgm")),
)


def corpus_files(server: PostgresServer) -> list[CorpusFile]:
    """The corpus files that apply to ``server`` (by major version and available extensions)."""
    available = set(
        server.psql("SELECT name FROM pg_catalog.pg_available_extensions").split()
    )
    major = server.major
    return [f for f in CORPUS if major >= f.min_major and set(f.extensions) <= available]


def load_corpus(server: PostgresServer, dbname: str) -> list[CorpusFile]:
    """Load every applicable corpus file into ``dbname`` (psql, ON_ERROR_STOP, as superuser)."""
    files = corpus_files(server)
    for f in files:
        server.psql(f.path.read_text(encoding="utf-8"), database=dbname)
    return files


def _tool_env(url: DbUrl) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "PGCONNECT_TIMEOUT": "10",
        **url.to_libpq_env(),
    }


def _tool(bindir: Path, name: str, args: list[str], url: DbUrl, what: str
          ) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(bindir / name), *args], env=_tool_env(url), capture_output=True, text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {res.returncode}): {res.stderr.strip()}")
    return res


def reference_restore(source: DbUrl, target: DbUrl, workdir: Path, bindir: Path) -> None:
    """The reference round trip: ``pg_dump -Fc`` of ``source`` | ``pg_restore`` into the empty
    database ``target``, with the tools in ``bindir``: the target server's own, as an operator
    would (all pairings restore into the same or a newer major). Not always the newest pg_dump:
    pg_dump 18 writes subscriptions of a 15 server WITH (run_as_owner = true), and SET
    transaction_timeout before each session, which a 15 server rejects. Stops at the first
    error and raises it with pg_restore's message."""
    dump = workdir / f"{source.database}.reference.dump"
    _tool(bindir, "pg_dump", ["-Fc", "-f", str(dump)], source, "pg_dump -Fc of the source")
    try:
        _tool(bindir, "pg_restore",
              ["--exit-on-error", "-d", f"dbname={target.database}", str(dump)],
              target, "pg_restore of the reference dump")
    finally:
        dump.unlink()


class OursFailed(Exception):
    """``mmops backup`` or ``mmops restore`` exited non-zero: the step, its exit code, stderr."""

    def __init__(self, step: str, returncode: int, stderr: str) -> None:
        self.step, self.returncode, self.stderr = step, returncode, stderr.strip()
        super().__init__(f"mmops {step} exited {returncode}: {self.stderr}")


def mmops_round_trip(source: DbUrl, target: DbUrl, *, restore_args: tuple[str, ...] = ()
                     ) -> None:
    """Ours: the real CLI, ``mmops backup -o FILE`` with the source's DATABASE_URL in the
    environment, then ``mmops restore FILE --yes --mode create`` into the empty ``target``
    (``restore_args`` appended, e.g. ``--no-owner``). Raises ``OursFailed``."""
    import tempfile

    from tests.cli_helpers import mmops

    with tempfile.TemporaryDirectory(prefix="mmops-fidelity-") as tmp:
        backup = Path(tmp) / "corpus.mmops"
        res = mmops("backup", "-o", str(backup), url=source)
        if res.returncode != 0:
            raise OursFailed("backup", res.returncode, res.stderr)
        res = mmops("restore", str(backup), "--yes", "--mode", "create",
                    "--backup-dir", str(Path(tmp) / "safety"), *restore_args, url=target)
        if res.returncode != 0:
            raise OursFailed("restore", res.returncode, res.stderr)


# "-- Name: X; Type: T; Schema: S; Owner: O" (also "-- Data for Name: …"): one per TOC entry.
_TOC_HEADER = re.compile(
    r"^-- (?:Data for )?Name: (?P<name>.*); Type: (?P<type>[^;]*); "
    r"Schema: (?P<schema>[^;]*); Owner: (?P<owner>.*)$"
)
# Session state pg_dump sets between entries instead of repeating it in each CREATE.
_SESSION_SET = re.compile(
    r"^SET (?P<name>default_table_access_method|default_tablespace) = (?P<v>.*);$"
)
_OWNER_TO = re.compile(r"^ALTER [A-Z ]+ .* OWNER TO .*;$")
_ON_OBJECT_TYPES = {"ACL", "COMMENT", "SECURITY LABEL", "DEFAULT ACL"}
_STATEFUL_TYPES = {"TABLE", "MATERIALIZED VIEW", "INDEX", "CONSTRAINT", "TABLE ATTACH"}


@dataclass(frozen=True)
class TocEntry:
    """One object as pg_dump's plain script shows it: header fields and its SQL, normalized."""

    type: str
    schema: str
    name: str
    owner: str
    sql: str

    @property
    def label(self) -> str:
        if self.type in _ON_OBJECT_TYPES:  # the name is "TABLE t", "COLUMN t.c", …
            return f"{self.type} ON {self.name}" + (
                "" if self.schema == "-" else f" (schema {self.schema})")
        return f"{self.type} {self.name}" if self.schema == "-" else (
            f"{self.type} {self.schema}.{self.name}")


def split_toc(script: str) -> dict[str, TocEntry]:
    """Split a plain ``pg_dump`` script into its TOC entries, keyed by their label.

    Comment lines, blank lines, psql meta-commands (``\\restrict``) and the preamble's SETs are
    dropped; the table access method / tablespace pg_dump selects with a SET before an entry is
    written into the entries it applies to, so a table that came back on another access method
    is a difference of that table.
    """
    entries: dict[str, TocEntry] = {}
    state: dict[str, str] = {}
    header: re.Match[str] | None = None
    body: list[str] = []

    def flush() -> None:
        if header is None:
            return
        kind = header["type"]
        # The owner is compared from the header: its ALTER … OWNER TO line would count twice.
        lines = [ln for ln in body if ln.strip() and not ln.startswith(("--", "\\"))
                 and not _OWNER_TO.match(ln)]
        if kind in _STATEFUL_TYPES:
            lines = [f"SET {k} = {v};" for k, v in sorted(state.items())] + lines
        entry = TocEntry(kind, header["schema"], header["name"], header["owner"],
                         "\n".join(lines))
        key, n = entry.label, 1
        while key in entries:
            n += 1
            key = f"{entry.label} #{n}"
        entries[key] = entry

    for line in script.splitlines():
        m = _TOC_HEADER.match(line)
        if m:
            flush()
            header, body = m, []
            continue
        s = _SESSION_SET.match(line)
        if s:
            state[s["name"]] = s["v"]
            continue
        if header is not None:
            body.append(line)
    flush()
    return entries


def schema_entries(url: DbUrl, bindir: Path | None = None) -> dict[str, TocEntry]:
    """``pg_dump --schema-only`` of ``url`` (owners and privileges kept), split into entries."""
    tools = bindir or newest_pg_dump_bindir()
    res = _tool(tools, "pg_dump", ["--schema-only"], url, "pg_dump --schema-only")
    return split_toc(res.stdout)


def fetch(url: DbUrl, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run one query on a connection of its own (synchronous, for tests)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def large_objects(url: DbUrl) -> dict[str, str]:
    """Every large object: ``oid`` -> ``size:sha256`` of its contents (owner, ACL and comment are
    in the schema entries)."""
    rows = fetch(url, "SELECT oid::text AS oid, length(lo_get(oid)) AS n, "
                      "encode(sha256(lo_get(oid)), 'hex') AS h "
                      "FROM pg_catalog.pg_largeobject_metadata ORDER BY oid")
    return {r["oid"]: f"{r['n']}:{r['h']}" for r in rows}


def _short_diff(a: str, b: str, limit: int = 12) -> str:
    import difflib

    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "expected", "got",
                                      lineterm="", n=0))[2:]
    more = f"\n    … {len(lines) - limit} more lines" if len(lines) > limit else ""
    return "\n".join(f"    {ln}" for ln in lines[:limit]) + more


def compare_databases(expected: DbUrl, got: DbUrl, bindir: Path | None = None,
                      *, schema: bool = True) -> list[str]:
    """Every difference of ``got`` from ``expected`` as pg_dump sees them, object by object
    (``missing``/``extra``/``owner``/``differs``), then every table's rows, every sequence and
    every large object. One line (plus a short diff) per difference, each naming the object;
    empty when the two are the same. ``schema=False`` compares only the contents."""
    diffs: list[str] = []
    if schema:
        want, have = schema_entries(expected, bindir), schema_entries(got, bindir)
        for key in sorted(want.keys() - have.keys()):
            diffs.append(f"missing: {key} (owner {want[key].owner})")
        for key in sorted(have.keys() - want.keys()):
            diffs.append(f"extra: {key} (owner {have[key].owner})")
        for key in sorted(want.keys() & have.keys()):
            r, g = want[key], have[key]
            if r.owner != g.owner:
                diffs.append(f"owner: {key}: expected {r.owner}, got {g.owner}")
            if r.sql != g.sql:
                diffs.append(f"differs: {key}\n{_short_diff(r.sql, g.sql)}")
    for what, want_d, have_d in (
        ("rows", data_digest(expected), data_digest(got)),
        ("large object", large_objects(expected), large_objects(got)),
    ):
        for key in sorted(want_d.keys() | have_d.keys()):
            a, b = want_d.get(key, "absent"), have_d.get(key, "absent")
            if a != b:
                diffs.append(f"{what}: {key}: expected {a}, got {b}")
    return diffs
