"""Hostile backup files, built from the format's own primitives: a manifest that says anything
(with a valid crc), and decompression bombs (small files whose frames expand enormously)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard

from ops.archive import ArchiveReader, ArchiveWriter
from ops.archive.format import (
    REC_BEGIN,
    REC_CHUNK,
    REC_END,
    REC_HEADER,
    REC_MANIFEST,
    RECORD_HEADER_SIZE,
    compress_chunk,
    dump_json,
    pack_fixed_header,
    pack_record_header,
    pack_trailer,
)

ROWS = b"1\talpha\n2\tbeta\n" * 500
CHUNK = 4096
TABLE = {"schema": "public", "name": "notes", "member": "data/00000", "rows": 1000,
         "raw_bytes": len(ROWS), "columns": ["id", "body"],
         # what the writer stores: one level-3 frame per CHUNK bytes
         "stored_bytes": sum(len(compress_chunk(ROWS[i:i + CHUNK], 3))
                             for i in range(0, len(ROWS), CHUNK))}


def engine_like_archive(path: Path) -> Path:
    """A small backup whose manifest has the engine's keys (tables, schemas, ...)."""
    with ArchiveWriter(path, chunk_size=CHUNK) as writer:
        writer.add_member("schema.json", "schema", b"{}")
        writer.add_member("data/00000", "table-data", ROWS)
        return writer.commit({
            "tool": "markdown-manager-ops", "database": "db", "server_version": "15.4",
            "timezone": "UTC", "alembic_revision": "abc123", "schemas": ["public"],
            "tables": [TABLE], "partial": False, "sequences": 0,
        })


def manifest_of(path: Path) -> dict[str, Any]:
    with ArchiveReader(path) as reader:
        return json.loads(json.dumps(reader.manifest))


def replace_manifest(path: Path, body: bytes) -> Path:
    """Put ``body`` in place of the manifest record, with a trailer whose crc matches it."""
    with ArchiveReader(path) as reader:
        data_end = reader.data_end
    with open(path, "r+b") as f:
        f.truncate(data_end)
        f.seek(data_end)
        f.write(pack_record_header(REC_MANIFEST, 0, len(body)) + body)
        f.write(pack_trailer(data_end + RECORD_HEADER_SIZE, body))
    return path


def edit_manifest(path: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """Rewrite the manifest as ``edit(manifest)`` returns it (a dict, or bytes as they are)."""
    body = edit(manifest_of(path))
    return replace_manifest(path, body if isinstance(body, bytes) else json.dumps(body).encode())


def zero_frame(raw_size: int, *, level: int = 3) -> bytes:
    """One zstd frame of ``raw_size`` zero bytes (content size and checksum), made in 1 MiB
    steps: a few KiB that expand to ``raw_size``."""
    cobj = zstandard.ZstdCompressor(level=level, write_checksum=True,
                                    write_content_size=True).compressobj(size=raw_size)
    parts = []
    block = bytes(1 << 20)
    left = raw_size
    while left:
        parts.append(cobj.compress(block[: min(left, len(block))]))
        left -= min(left, len(block))
    parts.append(cobj.flush())
    return b"".join(parts)


def zeros_sha256(size: int) -> str:
    sha = hashlib.sha256()
    block = bytes(1 << 20)
    while size:
        sha.update(block[: min(size, len(block))])
        size -= min(size, len(block))
    return sha.hexdigest()


def craft(path: Path, frames: list[bytes], *, chunk_size: int, raw_size: int,
          sha256: str | None = None, header: dict[str, Any] | None = None) -> Path:
    """A structurally valid file with one member ``data/00000`` made of ``frames`` as they are
    (whatever they claim), its manifest listing ``raw_size`` bytes."""
    sha = sha256 or "0" * 64
    out = bytearray(pack_fixed_header())
    head = header or {"format": "markdown-manager-ops", "format_version": 1,
                      "tool_version": "0", "created_at": "2026-12-01T00:00:00Z",
                      "compression": "zstd", "chunk_size": chunk_size}
    body = dump_json(head)
    out += pack_record_header(REC_HEADER, 0, len(body)) + body
    body = dump_json({"name": "data/00000", "kind": "table-data"})
    out += pack_record_header(REC_BEGIN, 1, len(body)) + body
    chunks = []
    for frame in frames:
        out += pack_record_header(REC_CHUNK, 1, len(frame))
        chunks.append([len(out), len(frame)])
        out += frame
    body = dump_json({"raw_size": raw_size, "sha256": sha, "chunk_count": len(frames)})
    out += pack_record_header(REC_END, 1, len(body)) + body
    manifest = dump_json({
        "format": "markdown-manager-ops", "format_version": 1, "compression": "zstd",
        "tool_version": "0", "created_at": "2026-12-01T00:00:00Z", "database": "db",
        "tables": [{**TABLE, "raw_bytes": raw_size,
                    "stored_bytes": sum(len(f) for f in frames)}],
        "members": [{"name": "data/00000", "kind": "table-data", "raw_size": raw_size,
                     "stored_size": sum(len(f) for f in frames), "sha256": sha,
                     "chunk_count": len(frames), "chunks": chunks}],
    })
    offset = len(out) + RECORD_HEADER_SIZE
    out += pack_record_header(REC_MANIFEST, 0, len(manifest)) + manifest
    out += pack_trailer(offset, manifest)
    path.write_bytes(bytes(out))
    return path


def bomb(path: Path, *, frames: int, frame_raw: int) -> Path:
    """``frames`` chunks of ``frame_raw`` zero bytes each, the file's chunk size as large, and
    a manifest that agrees (sizes and sha256): a consistent bomb."""
    total = frames * frame_raw
    return craft(path, [zero_frame(frame_raw)] * frames, chunk_size=frame_raw, raw_size=total,
                 sha256=zeros_sha256(total))


def frame_header_fields(frame: bytes) -> tuple[int, int | None, int, int]:
    """(descriptor, offset of the window descriptor or None, offset and size of the content
    size field) of a zstd frame header (RFC 8878, 3.1.1.1)."""
    fhd = frame[4]
    single_segment = bool(fhd & 0x20)
    window_at = None if single_segment else 5
    pos = 5 if single_segment else 6
    pos += (0, 1, 2, 4)[fhd & 0x03]  # dictionary id
    fcs_size = (1 if single_segment else 0, 2, 4, 8)[fhd >> 6]
    return fhd, window_at, pos, fcs_size


def with_declared_size(frame: bytes, size: int) -> bytes:
    """``frame`` whose header declares ``size`` raw bytes (the field keeps its width)."""
    _fhd, _window, at, width = frame_header_fields(frame)
    value = size - 256 if width == 2 else size
    return frame[:at] + value.to_bytes(width, "little") + frame[at + width:]


def with_window_log(frame: bytes, window_log: int) -> bytes:
    """``frame`` (not single-segment) whose header asks for a 2**window_log window."""
    _fhd, at, _fcs, _width = frame_header_fields(frame)
    assert at is not None, "a single-segment frame has no window descriptor"
    return frame[:at] + bytes([(window_log - 10) << 3]) + frame[at + 1:]
