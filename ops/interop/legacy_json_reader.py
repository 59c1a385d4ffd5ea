"""Read the old scripts' JSON backups incrementally, one row at a time.

The format (``production_backup_YYYYMMDD_HHMMSS.json``)::

    {"backup_timestamp": "2024-05-01T12:00:00", "database_url": "host:port/db",
     "tables": {"users": [{"id": 1, ...}, ...], "broken": {"error": "...", "data": []}}}

Files were written by ``json.dump`` of everything at once, so they can be big. This reader never
holds more than one row (plus a read buffer): ``scan()`` walks the file once and records, per table,
where its rows start (a byte offset), how many there are and which keys they use; ``rows()`` then
seeks to a table and yields its rows, so tables can be loaded in any order.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ArchiveError

_CHUNK = 1 << 20
_MAX_VALUE = 256 << 20  # a single row bigger than this is not a row of the old app
_WS = " \t\r\n"
_SNIFF_BYTES = 8192
_SNIFF_TABLES = re.compile(r'"tables"\s*:\s*\{')


def _decoder() -> json.JSONDecoder:
    # Decimal keeps numeric values exactly as written (floats become Decimal too).
    return json.JSONDecoder(parse_float=Decimal)


@dataclass
class TableEntry:
    """One entry of ``"tables"``: either rows (``offset`` of its ``[``) or a failure message."""

    name: str
    offset: int = -1
    rows: int = 0
    keys: dict[str, None] = field(default_factory=dict)  # ordered set of column names
    error: str | None = None


@dataclass
class LegacyFile:
    """What ``scan`` found: the header fields and the table entries in file order."""

    backup_timestamp: str | None = None
    database_url: str | None = None
    tables: dict[str, TableEntry] = field(default_factory=dict)


class _Cursor:
    """A position in the file's text, with a buffer refilled on demand."""

    def __init__(self, f: BinaryIO, name: str, start: int = 0) -> None:
        self._f, self._name = f, name
        f.seek(start)
        self._dec = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._base = start  # byte offset of _buf[0]
        self._eof = False
        self._json = _decoder()

    def _fill(self) -> bool:
        if self._eof:
            return False
        consumed = self._buf[: self._pos]
        self._base += len(consumed.encode("utf-8"))
        data = self._f.read(_CHUNK)
        try:
            text = self._dec.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise ArchiveError(f"{self._name} is not valid UTF-8 near byte {self._base}.") from exc
        self._buf = self._buf[self._pos :] + text
        self._pos = 0
        if not data:
            self._eof = True
        return True

    def offset(self) -> int:
        """Byte offset of the current position (the position must be at a character boundary)."""
        return self._base + len(self._buf[: self._pos].encode("utf-8"))

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), not consumed."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WS:
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        ch = self.peek()
        if not ch or ch not in chars:
            found = repr(ch) if ch else "the end of the file"
            raise ArchiveError(
                f"{self._name} is not a JSON backup of the old format: expected "
                f"{' or '.join(repr(c) for c in chars)} at byte {self.offset()}, found {found}"
                + (" (the file is truncated)." if not ch else ".")
            )
        self._pos += 1
        return ch

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if len(self._buf) - self._pos > _MAX_VALUE or not self._fill():
                    raise ArchiveError(
                        f"{self._name} holds invalid JSON near byte {self.offset()} "
                        f"({exc.msg}); the file is damaged or truncated."
                    ) from exc
                continue
            if end == len(self._buf) and not self._eof and not isinstance(obj, dict | list | str):
                # a number or literal may continue in the next chunk
                self._fill()
                continue
            self._pos = end
            return obj


def looks_like_legacy_json(path: Path) -> bool:
    """True when ``path`` starts like ``{"backup_timestamp": …, "tables": {…`` (first KBs only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff" + _WS)
    if not text.startswith("{"):
        return False
    return bool(_SNIFF_TABLES.search(text)) or '"backup_timestamp"' in text


def _header(cur: _Cursor, name: str) -> Iterator[tuple[str, int]]:
    """Yield each top-level key, leaving the cursor at its value."""
    cur.expect("{")
    if cur.peek() == "}":
        return
    while True:
        key = cur.value()
        if not isinstance(key, str):
            raise ArchiveError(f"{name} is not a JSON backup of the old format.")
        cur.expect(":")
        yield key, cur.offset()
        if cur.expect(",}") == "}":
            return


def scan(path: Path) -> LegacyFile:
    """Walk the whole file once (streaming) and index its tables; raises ArchiveError if damaged."""
    name = path.name
    out = LegacyFile()
    seen_tables = False
    with open(path, "rb") as f:
        cur = _Cursor(f, name)
        for key, _ in _header(cur, name):
            if key == "tables":
                seen_tables = True
                _scan_tables(cur, name, out)
            else:
                value = cur.value()
                if key == "backup_timestamp" and isinstance(value, str):
                    out.backup_timestamp = value
                elif key == "database_url" and isinstance(value, str):
                    out.database_url = value
    if not seen_tables:
        raise ArchiveError(f"{name} has no \"tables\" entry: it is not a JSON backup.")
    return out


def _scan_tables(cur: _Cursor, name: str, out: LegacyFile) -> None:
    cur.expect("{")
    if cur.peek() == "}":
        cur.expect("}")
        return
    while True:
        table = cur.value()
        if not isinstance(table, str):
            raise ArchiveError(f"{name}: a table name in \"tables\" is not a string.")
        cur.expect(":")
        entry = TableEntry(table)
        out.tables[table] = entry
        if cur.peek() == "[":
            entry.offset = cur.offset()
            for row in _iter_array(cur, name, table):
                entry.rows += 1
                for k in row:
                    entry.keys.setdefault(k, None)
        else:
            value = cur.value()
            if isinstance(value, dict) and "error" in value:
                entry.error = str(value.get("error"))
                if value.get("data"):
                    raise ArchiveError(
                        f"{name}: table {table} holds both an error and data; cannot tell which "
                        "to trust."
                    )
            else:
                raise ArchiveError(f"{name}: table {table} holds neither rows nor an error.")
        if cur.expect(",}") == "}":
            return


def _iter_array(cur: _Cursor, name: str, table: str) -> Iterator[dict[str, Any]]:
    cur.expect("[")
    if cur.peek() == "]":
        cur.expect("]")
        return
    index = 0
    while True:
        row = cur.value()
        if not isinstance(row, dict):
            raise ArchiveError(f"{name}: row {index} of table {table} is not a JSON object.")
        yield row
        index += 1
        if cur.expect(",]") == "]":
            return


def rows(path: Path, entry: TableEntry) -> Iterator[dict[str, Any]]:
    """The rows of one table, read from its recorded offset (streaming)."""
    if entry.offset < 0:
        return
    with open(path, "rb") as f:
        cur = _Cursor(f, path.name, entry.offset)
        yield from _iter_array(cur, path.name, entry.name)
