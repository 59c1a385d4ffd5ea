"""The on-disk layout of a backup file (``.mmops``): constants and record encoding.

A backup is written strictly front to back (never seeking), so it can be streamed::

    fixed header   MAGIC (10 bytes: b"\\x89MMOPS\\r\\n\\x1a\\n") + format version (u16 big-endian)
    record H       header JSON: format, format_version, tool_version, created_at, compression,
                   chunk_size -- so even a truncated file tells who wrote it and how
    record B       member begin, JSON {"name", "kind"}; binds a member id (1, 2, ...) to a name
    record C ...   member chunk: ONE zstd frame (content size + checksum) of <= chunk_size raw bytes
    record E       member end, JSON {"raw_size", "sha256", "chunk_count"}
                   (B/C/E records of members written in parallel interleave freely)
    record M       manifest JSON: the engine's metadata + format, format_version, compression and
                   ``members`` (name, kind, raw_size, stored_size, sha256, chunk offsets)
    trailer        TRAILER_MAGIC (8 bytes) + manifest payload offset (u64) + length (u64)
                   + crc32 of the manifest payload (u32): 28 bytes, always the last bytes

Every record is ``type (1 byte) | member id (u32) | payload length (u64) | payload``, all
integers big-endian; H and M records carry member id 0.  Chunk offsets in the manifest point at
the chunk's *payload* (the zstd frame), so a reader seeks straight to a member's frames, and
``inspect`` reads only the trailer and the manifest: O(1), no decompression.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from typing import Any

import zstandard

FORMAT_NAME = "markdown-manager-ops"
FORMAT_VERSION = 1
FILE_SUFFIX = ".mmops"
COMPRESSION = "zstd"

MAGIC = b"\x89MMOPS\r\n\x1a\n"  # PNG-style: catches text-mode transfers and 7-bit channels
_FIXED_HEADER = struct.Struct(">10sH")
FIXED_HEADER_SIZE = _FIXED_HEADER.size

REC_HEADER = b"H"
REC_BEGIN = b"B"
REC_CHUNK = b"C"
REC_END = b"E"
REC_MANIFEST = b"M"
RECORD_TYPES = frozenset({REC_HEADER, REC_BEGIN, REC_CHUNK, REC_END, REC_MANIFEST})

_RECORD = struct.Struct(">cIQ")
RECORD_HEADER_SIZE = _RECORD.size

TRAILER_MAGIC = b"MMOPSEND"
_TRAILER = struct.Struct(">8sQQI")
TRAILER_SIZE = _TRAILER.size

DEFAULT_CHUNK_SIZE = 4 << 20
MAX_CHUNK_SIZE = 256 << 20  # a reader refuses frames claiming more: bounds memory on garbage
MAX_SMALL_JSON = 1 << 20  # header / begin / end records
MAX_MANIFEST = 512 << 20

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class CorruptChunk(ValueError):
    """A chunk payload is not one valid zstd frame; ``str()`` is a short reason."""


def pack_fixed_header(version: int = FORMAT_VERSION) -> bytes:
    return _FIXED_HEADER.pack(MAGIC, version)


def unpack_fixed_header(data: bytes) -> tuple[bytes, int]:
    """Return (magic, format version) of the first FIXED_HEADER_SIZE bytes."""
    magic, version = _FIXED_HEADER.unpack(data)
    return magic, version


def pack_record_header(rtype: bytes, member_id: int, length: int) -> bytes:
    return _RECORD.pack(rtype, member_id, length)


def unpack_record_header(data: bytes) -> tuple[bytes, int, int]:
    """Return (type, member id, payload length) of RECORD_HEADER_SIZE bytes."""
    rtype, member_id, length = _RECORD.unpack(data)
    return rtype, member_id, length


def pack_trailer(manifest_offset: int, manifest: bytes) -> bytes:
    return _TRAILER.pack(TRAILER_MAGIC, manifest_offset, len(manifest), zlib.crc32(manifest))


def unpack_trailer(data: bytes) -> tuple[bytes, int, int, int]:
    """Return (magic, manifest offset, manifest length, manifest crc32)."""
    magic, offset, length, crc = _TRAILER.unpack(data)
    return magic, offset, length, crc


def dump_json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def load_json_object(data: bytes) -> dict[str, Any]:
    """Decode a JSON object; ValueError if it is not valid UTF-8 JSON or not an object."""
    obj = json.loads(data.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def new_compressor(level: int) -> zstandard.ZstdCompressor:
    # Content size bounds the reader's memory; the checksum catches flipped bits per chunk.
    return zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)


_per_thread = threading.local()


def compress_chunk(raw: bytes | bytearray | memoryview, level: int) -> bytes:
    """One chunk as one zstd frame, with this thread's (reused) compressor for ``level``.

    A compression context costs more to set up than a small table costs to compress, and
    python-zstandard's objects must not be shared between threads: one per thread and level.
    """
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_per_thread, "compressors", None)
    if cache is None:
        cache = _per_thread.compressors = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = new_compressor(level)
    return compressor.compress(raw)


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx: zstandard.ZstdDecompressor | None = getattr(_per_thread, "decompressor", None)
    if dctx is None:
        dctx = _per_thread.decompressor = zstandard.ZstdDecompressor()
    return dctx


def decode_chunk(frame: bytes, limit: int = MAX_CHUNK_SIZE) -> bytes:
    """Decompress one chunk payload, insisting it is exactly one complete, valid zstd frame."""
    if not frame.startswith(ZSTD_MAGIC):
        raise CorruptChunk("is not a zstd frame")
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise CorruptChunk("has a garbled zstd frame header") from exc
    if size < 0:
        raise CorruptChunk("has no content size in its zstd frame header")
    if size > limit:
        raise CorruptChunk(f"claims {size} raw bytes, more than the chunk size {limit}")
    if size == 0:
        # zstd refuses a zero write_size; an empty frame still has to parse to its end.
        out_limit = 1
    else:
        out_limit = size
    dobj = _decompressor().decompressobj(write_size=out_limit)
    try:
        raw = dobj.decompress(frame)
    except zstandard.ZstdError as exc:
        raise CorruptChunk(f"does not decompress ({exc})") from exc
    if not dobj.eof:
        raise CorruptChunk("ends in the middle of its zstd frame")
    if dobj.unused_data:
        raise CorruptChunk("has bytes after its zstd frame")
    if len(raw) != size:
        raise CorruptChunk(f"decompressed to {len(raw)} bytes instead of {size}")
    return raw
