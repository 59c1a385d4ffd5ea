"""Restore a plain-format SQL file written by ``pg_dump`` without psql, in the caller's transaction.

The file is read twice, streaming both times (memory does not grow with the file):

1. a check pass that parses every statement and COPY block and refuses, before anything changed,
   what cannot run in one transaction (``CREATE DATABASE``, ``VACUUM``, ``CREATE INDEX
   CONCURRENTLY``, transaction control …), psql meta-commands other than ``\\restrict`` /
   ``\\unrestrict`` (``\\connect`` in particular), non-UTF-8 client encodings, and files cut short;
2. an execute pass that sends each statement to the server and streams each ``COPY … FROM stdin``
   block's data to ``COPY`` (text format, as written by pg_dump).

Session settings. The caller owns the timeouts: ``SET statement_timeout / lock_timeout /
idle_in_transaction_session_timeout / transaction_timeout`` in the file are skipped (reported in
``skipped``). ``client_encoding`` must be UTF-8 (asyncpg speaks only UTF-8) and is skipped.
Every other session-level setting the file changes, notably pg_dump's
``set_config('search_path', '', false)``, runs as written and is put back to the caller's value
after the last statement; if the restore fails, the caller's rollback undoes them anyway.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from ..engine.pg_errors import describe_pg_error
from ..engine.results import Progress
from ..errors import ArchiveError, RestoreFailed, RestoreRefused
from .script_splitter import CopyData, MetaCommand, ScriptSplitter, Statement

_SNIFF_BYTES = 64 * 1024
_PG_DUMP_HEADER = b"-- PostgreSQL database dump"
_PG_DUMP_TRAILER = b"-- PostgreSQL database dump complete"
_SQL_FIRST_WORDS = {
    "SET", "SELECT", "CREATE", "ALTER", "DROP", "COPY", "INSERT", "COMMENT", "GRANT", "REVOKE",
    "UPDATE", "DELETE", "TRUNCATE", "WITH", "DO", "BEGIN", "START",
}  # fmt: skip
_CALLER_OWNED = {
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
    "idle_session_timeout",
}
_UTF8_NAMES = {"utf8", "utf-8", "unicode"}


@dataclass(frozen=True)
class CopiedTable:
    """One ``COPY … FROM stdin`` block that was loaded."""

    table: str
    rows: int
    line: int


@dataclass(frozen=True)
class SqlScriptResult:
    path: str
    statements: int
    tables: tuple[CopiedTable, ...]
    sequences_set: tuple[str, ...]
    skipped: tuple[str, ...]
    warnings: tuple[str, ...]
    bytes_read: int
    duration_s: float

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.total_rows
        return d


# --------------------------------------------------------------------------- sniffing


def looks_like_sql_script(path: Path) -> bool:
    """True when the first KBs of ``path`` read as a SQL script (pg_dump's plain format or similar).

    Only the beginning of the file is read. Binary files (archives, compressed data) and JSON are
    rejected.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    if not head or b"\x00" in head:
        return False
    if head.startswith(_PG_DUMP_HEADER) or head.lstrip().startswith(_PG_DUMP_HEADER):
        return True
    text = head.decode("utf-8", errors="replace")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        if stripped.startswith("\\"):
            return stripped[1:].split(" ")[0] in ("restrict", "connect", "c", "set", "encoding")
        first = re.match(r"[A-Za-z]+", stripped)
        return first is not None and first.group().upper() in _SQL_FIRST_WORDS
    return False


# --------------------------------------------------------------------------- pure policy


def transaction_refusal(stmt: Statement) -> str | None:
    """Why ``stmt`` cannot run inside the restore's single transaction, or None."""
    w = stmt.words
    if not w:
        return None
    head2 = w[:2]
    if head2 in (
        ("CREATE", "DATABASE"),
        ("DROP", "DATABASE"),
        ("CREATE", "TABLESPACE"),
        ("DROP", "TABLESPACE"),
        ("ALTER", "SYSTEM"),
    ):
        return f"{' '.join(head2)} cannot run inside a transaction block"
    if w[0] == "VACUUM":
        return "VACUUM cannot run inside a transaction block"
    if w[0] == "CLUSTER" and all(x == "VERBOSE" for x in w[1:]):
        return "CLUSTER of the whole database cannot run inside a transaction block"
    if w[0] == "REINDEX" and ("CONCURRENTLY" in w or w[1:2] in (("DATABASE",), ("SYSTEM",))):
        return "this REINDEX cannot run inside a transaction block"
    if w[0] in ("CREATE", "DROP") and "INDEX" in w[:3] and "CONCURRENTLY" in w[:4]:
        return f"{w[0]} INDEX CONCURRENTLY cannot run inside a transaction block"
    if head2 == ("DISCARD", "ALL"):
        return "DISCARD ALL cannot run inside a transaction block"
    if head2 == ("ALTER", "DATABASE") and "TABLESPACE" in w:
        return "ALTER DATABASE … SET TABLESPACE cannot run inside a transaction block"
    if w[0] in ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"):
        return f"{w[0]} would end or split the restore's single transaction"
    if head2 == ("PREPARE", "TRANSACTION"):
        return "PREPARE TRANSACTION would end the restore's single transaction"
    if head2 == ("RESET", "ALL"):
        return "RESET ALL would also reset the restore's own lock_timeout"
    if w[0] == "COPY":
        return "only COPY … FROM stdin is supported (not server files, programs or TO)"
    return None


_SET_RE = re.compile(
    r"^\s*SET\s+(?:(LOCAL)\s+|SESSION\s+(?!AUTHORIZATION|CHARACTERISTICS))?"
    r"(TIME\s+ZONE|SCHEMA|NAMES|XML\s+OPTION|ROLE|SESSION\s+AUTHORIZATION|TRANSACTION|"
    r"CONSTRAINTS|SESSION\s+CHARACTERISTICS|\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w.$]*)"
    r"(?:\s*(?:=|\bTO\b)\s*|\s+)(.*?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RESET_RE = re.compile(r"^\s*RESET\s+([A-Za-z_][\w.$]*|\"(?:[^\"]|\"\")+\")\s*;?\s*$", re.I)
_SET_CONFIG_RE = re.compile(
    r"^\s*SELECT\s+(?:pg_catalog\.)?set_config\s*\(\s*'([^']*)'\s*,\s*(.*?)\s*,\s*(\w+)\s*\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SPECIAL_SETTINGS = {
    "TIME ZONE": "timezone",
    "SCHEMA": "search_path",
    "NAMES": "client_encoding",
    "XML OPTION": "xmloption",
    "ROLE": "role",
    "SESSION AUTHORIZATION": "session_authorization",
}


@dataclass(frozen=True)
class SettingChange:
    """A session-level setting a statement changes, and the value it gives (as written)."""

    name: str
    value: str


def session_setting_change(stmt: Statement) -> SettingChange | None:
    """The session-level setting ``stmt`` changes (SET, RESET, set_config(..., false)), or None."""
    text = stmt.text
    if stmt.starts_with("SET"):
        m = _SET_RE.match(text)
        if not m or m.group(1):  # unparsed, or SET LOCAL (ends with the transaction)
            return None
        raw = re.sub(r"\s+", " ", m.group(2)).upper()
        if raw in ("TRANSACTION", "CONSTRAINTS", "SESSION CHARACTERISTICS"):
            return None
        name = _SPECIAL_SETTINGS.get(raw) or _unquote_ident(m.group(2))
        return SettingChange(name, _unquote_literal(m.group(3)))
    if stmt.starts_with("RESET"):
        m = _RESET_RE.match(text)
        return SettingChange(_unquote_ident(m.group(1)), "DEFAULT") if m else None
    if stmt.starts_with("SELECT", "PG_CATALOG", "SET_CONFIG") or stmt.starts_with(
        "SELECT", "SET_CONFIG"
    ):
        m = _SET_CONFIG_RE.match(text)
        if m and m.group(3).lower() == "false":
            return SettingChange(m.group(1).lower(), _unquote_literal(m.group(2)))
    return None


def _unquote_ident(raw: str) -> str:
    if raw.startswith('"'):
        return raw[1:-1].replace('""', '"')
    return raw.lower()


def _unquote_literal(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw


@dataclass(frozen=True)
class CopyTarget:
    schema: str | None
    table: str
    columns: tuple[str, ...] | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


_COPY_TOKEN = re.compile(
    r'\s*("(?:[^"]|"")*"|[A-Za-z_\x80-\U0010ffff][\w$\x80-\U0010ffff]*|[.,();])'
)


def parse_copy_target(stmt: Statement) -> CopyTarget | None:
    """``COPY [schema.]table [(col, …)] FROM stdin;`` → its target; None for any other shape."""
    tokens: list[str] = []
    pos = 0
    text = stmt.text.rstrip()
    while pos < len(text):
        m = _COPY_TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            return None
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens or tokens[0].upper() != "COPY":
        return None
    i = 1

    def ident(tok: str) -> str | None:
        if tok.startswith('"'):
            return tok[1:-1].replace('""', '"')
        if tok in ".,();":
            return None
        return tok.lower()

    first = ident(tokens[i]) if i < len(tokens) else None
    if first is None:
        return None
    schema: str | None = None
    table = first
    i += 1
    if i + 1 < len(tokens) and tokens[i] == ".":
        second = ident(tokens[i + 1])
        if second is None:
            return None
        schema, table = first, second
        i += 2
    columns: list[str] | None = None
    if i < len(tokens) and tokens[i] == "(":
        columns = []
        i += 1
        while i < len(tokens) and tokens[i] != ")":
            if tokens[i] != ",":
                col = ident(tokens[i])
                if col is None:
                    return None
                columns.append(col)
            i += 1
        i += 1
    rest = [t.upper() for t in tokens[i:]]
    if rest not in (["FROM", "STDIN", ";"], ["FROM", "STDIN"]):
        return None
    return CopyTarget(schema, table, tuple(columns) if columns is not None else None)


# --------------------------------------------------------------------------- restore


@dataclass
class _Check:
    """What the check pass learned."""

    statements: int = 0
    copies: int = 0
    pg_dump_header: bool = False


def _check_script(path: Path) -> _Check:
    """Pass 1: parse everything, refuse what cannot run; nothing is sent to the server."""
    check = _Check()
    name = path.name
    with open(path, "rb") as f:
        # pg_dump opens with "--\n-- PostgreSQL database dump\n--": look at the first lines.
        head = f.read(512)
        check.pg_dump_header = any(
            line.strip() == _PG_DUMP_HEADER for line in head.splitlines()[:4]
        )
        f.seek(0)
        splitter = ScriptSplitter(f)
        restrict_key: str | None = None
        unrestricted = False
        for item in splitter:
            if isinstance(item, MetaCommand):
                if item.name == "restrict":
                    restrict_key, unrestricted = item.argument, False
                elif item.name == "unrestrict":
                    if restrict_key is None or item.argument != restrict_key:
                        raise ArchiveError(
                            f"Line {item.line} of {name} ends a \\restrict block it never "
                            "started (keys differ): the file is damaged."
                        )
                    unrestricted = True
                elif item.name in ("connect", "c"):
                    raise RestoreRefused(
                        f"Line {item.line} of {name} switches database (\\{item.name}): the "
                        "file was written by pg_dumpall or pg_dump --create; dump the single "
                        "database without --create and restore that."
                    )
                else:
                    raise RestoreRefused(
                        f"Line {item.line} of {name} holds the psql command \\{item.name}, "
                        "which mmops does not run; only pg_dump's plain output is supported."
                    )
            elif isinstance(item, CopyData):
                if parse_copy_target(item.statement) is None:
                    raise RestoreRefused(
                        f"Line {item.statement.line} of {name} has a COPY statement mmops "
                        "cannot read (expected COPY table (columns) FROM stdin; with no options)."
                    )
                for _ in item.chunks():
                    pass
                check.copies += 1
            else:
                check.statements += 1
                reason = transaction_refusal(item)
                if reason:
                    raise RestoreRefused(
                        f"Line {item.line} of {name} cannot be restored: {reason}; "
                        "remove it from the file (mmops restores in one transaction)."
                    )
                change = session_setting_change(item)
                if change and change.name == "client_encoding":
                    if change.value.lower() not in _UTF8_NAMES:
                        raise RestoreRefused(
                            f"Line {item.line} of {name} sets client_encoding to "
                            f"{change.value}; mmops reads UTF-8 only: dump again with "
                            "pg_dump --encoding=UTF8."
                        )
                elif change and change.name == "standard_conforming_strings":
                    splitter.standard_conforming_strings = change.value.lower() in ("on", "true")
        if restrict_key is not None and not unrestricted:
            raise ArchiveError(
                f"{name} opens a \\restrict block that never ends: the file is truncated."
            )
    if check.pg_dump_header and not _tail_has_trailer(path):
        raise ArchiveError(
            f"{name} lacks pg_dump's closing '-- PostgreSQL database dump complete' line: "
            "the file is truncated; use a complete dump."
        )
    return check


def _tail_has_trailer(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4096))
        return _PG_DUMP_TRAILER in f.read()


async def restore_sql_script(
    conn: asyncpg.Connection,
    path: Path,
    *,
    progress: Callable[[Progress], None] | None = None,
) -> SqlScriptResult:
    """Run the plain SQL file ``path`` (pg_dump's plain format) on ``conn`` without psql.

    The caller opens the transaction (and sets lock_timeout); this function never commits.
    Raises ``RestoreRefused`` (nothing was sent), ``ArchiveError`` (unreadable or truncated
    file, found before anything was sent) or ``RestoreFailed`` (a statement or COPY failed: the
    caller's rollback leaves the target unchanged).
    """
    started = time.monotonic()
    path = Path(path)
    name = path.name
    try:
        total = path.stat().st_size
    except OSError as exc:
        raise ArchiveError(f"Cannot read {path}: {exc.strerror}.") from exc
    check = await asyncio.get_running_loop().run_in_executor(None, _check_script, path)
    warnings: list[str] = []
    if not check.pg_dump_header:
        warnings.append(f"{name} has no pg_dump header; it was run as a plain SQL script.")

    saved: dict[str, str | None] = {
        "search_path": await conn.fetchval("SELECT pg_catalog.current_setting('search_path')")
    }
    skipped: list[str] = []
    tables: list[CopiedTable] = []
    sequences: list[str] = []
    statements = 0

    def report(phase: str, done: int, item: str | None = None) -> None:
        if progress is not None:
            progress(Progress(phase=phase, done=done, total=total, item=item))

    with open(path, "rb") as f:
        splitter = ScriptSplitter(f)
        for item in splitter:
            if isinstance(item, MetaCommand):
                continue  # only \restrict / \unrestrict remain after the check pass
            if isinstance(item, CopyData):
                target = parse_copy_target(item.statement)
                assert target is not None  # checked in pass 1
                report("data", splitter.bytes_read, target.qualified)
                rows = await _copy_in(conn, item, target, name, splitter, report)
                tables.append(CopiedTable(target.qualified, rows, item.statement.line))
                continue
            change = session_setting_change(item)
            if change is not None:
                if change.name in _CALLER_OWNED or change.name == "client_encoding":
                    skipped.append(f"line {item.line}: SET {change.name}")
                    continue
                if change.name == "standard_conforming_strings":
                    splitter.standard_conforming_strings = change.value.lower() in ("on", "true")
                if change.name not in saved:
                    saved[change.name] = await conn.fetchval(
                        "SELECT pg_catalog.current_setting($1, true)", change.name
                    )
            try:
                await conn.execute(item.text)
            except asyncpg.PostgresError as exc:
                raise RestoreFailed(
                    f"Line {item.line} of {name} failed ({_summary(item)}): "
                    f"{_pg_message(exc)}; the restore was rolled back."
                ) from exc
            statements += 1
            if item.starts_with("SELECT", "PG_CATALOG", "SETVAL") or item.starts_with(
                "SELECT", "SETVAL"
            ):
                m = re.search(r"setval\s*\(\s*'((?:[^']|'')*)'", item.text, re.IGNORECASE)
                if m:
                    sequences.append(m.group(1).replace("''", "'"))
            if statements % 200 == 0:
                report("schema", splitter.bytes_read)
        bytes_read = splitter.bytes_read

    for setting, value in saved.items():
        if value is not None:
            await conn.execute("SELECT pg_catalog.set_config($1, $2, false)", setting, value)
    report("data", bytes_read)
    return SqlScriptResult(
        path=str(path),
        statements=statements,
        tables=tuple(tables),
        sequences_set=tuple(sequences),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
        bytes_read=bytes_read,
        duration_s=round(time.monotonic() - started, 3),
    )


async def _copy_in(
    conn: asyncpg.Connection,
    item: CopyData,
    target: CopyTarget,
    name: str,
    splitter: ScriptSplitter,
    report: Callable[[str, int, str | None], None],
) -> int:
    chunks: Iterator[bytes] = item.chunks()
    reported = [0]

    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            if splitter.bytes_read - reported[0] >= 8 * 1024 * 1024:
                reported[0] = splitter.bytes_read
                report("data", splitter.bytes_read, target.qualified)
            yield chunk

    try:
        status = await conn.copy_to_table(
            target.table,
            schema_name=target.schema,
            columns=list(target.columns) if target.columns is not None else None,
            source=source(),
            format="text",
        )
    except asyncpg.PostgresError as exc:
        line = item.statement.line
        m = re.search(r"line (\d+)", getattr(exc, "context", None) or "")
        where = f"line {line + int(m.group(1))}" if m else f"the COPY at line {line}"
        raise RestoreFailed(
            f"Loading {target.qualified} failed at {where} of {name}: "
            f"{_pg_message(exc, target.qualified)}; "
            "the restore was rolled back."
        ) from exc
    m = re.match(r"COPY (\d+)", status or "")
    return int(m.group(1)) if m else 0


def _summary(stmt: Statement) -> str:
    words = " ".join(w for w in stmt.words[:4] if w.isidentifier())
    return words or stmt.text[:40]


def _pg_message(exc: asyncpg.PostgresError, table: str | None = None) -> str:
    # Never PostgreSQL's DETAIL: "Failing row contains (...)" would print a whole row.
    return describe_pg_error(exc, table=table)
