"""Turn a backup archive into a plain SQL script that stock ``psql -v ON_ERROR_STOP=1 -f``
restores into an empty database, in one transaction, with the same fidelity as our restore."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..archive import ArchiveReader
from ..engine.backup import SCHEMA_DUMP_MEMBER, SCHEMA_MEMBER
from ..engine.catalog import parse_json_member
from ..engine.legacy_schema import LegacySchema
from ..engine.pg_script import runnable_script
from ..engine.pg_tools import list_entries, restore_sql
from ..engine.schema_apply import SECTIONS
from ..engine.sql_text import quote_ident

_PROLOGUE = """\
-- markdown-manager-ops plain SQL export
-- source database: {database} (PostgreSQL {server_version}), taken {created_at}
-- restore into an EMPTY database with: psql -v ON_ERROR_STOP=1 -f THIS_FILE
\\set ON_ERROR_STOP on
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
BEGIN;
SET LOCAL check_function_bodies = false;
SET LOCAL client_min_messages = warning;
SET LOCAL row_security = off;
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL search_path = '';
"""


@dataclass(frozen=True)
class ExportResult:
    path: str
    tables: int
    rows: int
    bytes_written: int


def export_sql(
    archive_path: Path, out_path: Path, progress: Callable[[str], None] | None = None
) -> ExportResult:
    """Write ``out_path`` (0600, via a temporary name) from the archive at ``archive_path``."""
    tmp = out_path.with_name(f".{out_path.name}.partial-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, ArchiveReader(archive_path) as reader:
            rows = _write_script(reader, out, progress or (lambda _m: None))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
            tables = len(reader.manifest["tables"])
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(str(out_path), tables, rows, size)


def _statement(stmt: str) -> bytes:
    text = stmt.rstrip().rstrip(";").rstrip()
    return (text + ";\n\n").encode()


def _write_script(reader: ArchiveReader, out: BinaryIO, progress: Callable[[str], None]) -> int:
    manifest = reader.manifest
    sections = _schema_sections(reader)
    out.write(
        _PROLOGUE.format(
            database=manifest.get("database"),
            server_version=manifest.get("server_version"),
            created_at=manifest.get("created_at"),
        ).encode()
    )
    out.write(b"\n-- pre-data\n")
    out.write(sections["pre-data"].encode())
    rows = 0
    for table in manifest["tables"]:
        label = f"{quote_ident(table['schema'])}.{quote_ident(table['name'])}"
        progress(label)
        cols = table["columns"]
        col_list = f" ({', '.join(quote_ident(c) for c in cols)})" if cols else ""
        out.write(f"\n-- data for {label}: {table['rows']} rows\n".encode())
        out.write(f"COPY {label}{col_list} FROM stdin;\n".encode())
        last = b"\n"
        for chunk in reader.iter_member(table["member"]):
            out.write(chunk)
            last = chunk[-1:]
        if last != b"\n":
            out.write(b"\n")
        out.write(b"\\.\n")
        rows += int(table["rows"])
    out.write(b"\n-- post-data\n")
    out.write(sections["data"].encode())
    out.write(sections["post-data"].encode())
    out.write(b"COMMIT;\n")
    return rows


def _schema_sections(reader: ArchiveReader) -> dict[str, str]:
    """Each section's SQL: pg_restore's for a pg_dump-schema backup (its data section holds
    sequence values and large objects), the statement lists of an older one."""
    names = {m.name for m in reader.members}
    if SCHEMA_DUMP_MEMBER not in names:
        legacy = LegacySchema.from_json(
            parse_json_member(reader.read_member(SCHEMA_MEMBER), SCHEMA_MEMBER))
        return {
            "pre-data": "".join(_statement(s).decode() for s in legacy.pre_data),
            "data": "",
            "post-data": "".join(
                _statement(s).decode()
                for s in (*legacy.post_data, *legacy.refresh,
                          *(q.setval_sql() for q in legacy.sequences))
            ),
        }
    with tempfile.TemporaryDirectory(prefix="mmops-export-") as work:
        archive = Path(work) / "schema.pgdump"
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            for chunk in reader.iter_member(SCHEMA_DUMP_MEMBER):
                f.write(chunk)
        return asyncio.run(_sections(archive))


async def _sections(archive: Path) -> dict[str, str]:
    out = {}
    for section in SECTIONS:
        entries = await list_entries(archive, section)
        out[section] = runnable_script(await restore_sql(archive, entries)) if entries else ""
    return out
