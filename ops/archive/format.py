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

import io
import json
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
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
MAX_SMALL_MEMBER = 128 << 20  # what ArchiveReader.read_member holds at most (schema.json)
MAX_SMALL_JSON = 64 << 10  # header / begin / end records
# A manifest is decoded whole (to Python objects ~20 times its size): 16 MiB lists ~700,000
# chunks (~3 TiB of table data at the default chunk size) or ~50,000 tables.
MAX_MANIFEST = 16 << 20

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


MAX_LEVEL = 19  # zstd levels 20-22 need windows beyond MAX_WINDOW
MAX_WINDOW = 8 << 20  # the largest window a frame may ask for: level 19's (windowLog 23)
PIECE = 1 << 20  # raw bytes per decompress call: a chunk's memory, whatever its frame claims
_READ_SIZE = 128 << 10  # compressed bytes the decompressor reads at a time
FRAME_HEADER_MAX = 18  # ZSTD_FRAMEHEADERSIZE_MAX
# An empty skippable frame, fed after a chunk's frame: python-zstandard's stream reader (the
# API that bounds output per call; its decompressobj reports the end of a frame but returns all
# output of a call at once) ends silently when its input ends inside a frame. Fed right after a
# complete frame this parses as a frame of its own that yields nothing; fed into an unfinished
# one it becomes block or checksum bytes and fails the frame.
_END_PROBE = b"\x50\x2a\x4d\x18\x00\x00\x00\x00"


def frame_content_size(head: bytes, limit: int) -> int:
    """The raw size a chunk's zstd frame declares in its header (``head``: its first bytes).

    CorruptChunk unless it is a zstd frame with a content size of at most ``limit``, a
    checksum, no dictionary and a window of at most MAX_WINDOW -- all read before decompressing.
    """
    if not head.startswith(ZSTD_MAGIC):
        raise CorruptChunk("is not a zstd frame")
    try:
        params = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError as exc:
        raise CorruptChunk("has a garbled zstd frame header") from exc
    size = params.content_size
    if size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise CorruptChunk("has no content size in its zstd frame header")
    if size > limit:
        # ``limit``: the file's chunk size, or less where the manifest lists less.
        raise CorruptChunk(f"declares {size} raw bytes, more than the {limit} it may hold")
    if not params.has_checksum:
        raise CorruptChunk("has no checksum in its zstd frame header")
    if params.dict_id:
        raise CorruptChunk("needs a zstd dictionary")
    if params.window_size > MAX_WINDOW:
        raise CorruptChunk(f"asks for a {params.window_size}-byte zstd window, more than "
                           f"the {MAX_WINDOW} allowed")
    return int(size)


class _FrameInput(io.RawIOBase):
    """A chunk's frame as the decompressor reads it: ``head``, then ``length`` more bytes from
    ``read``, then the end probe."""

    def __init__(self, head: bytes, read: Callable[[int], bytes], length: int) -> None:
        super().__init__()
        self._pending = head
        self._read = read
        self._left = length
        self._probed = False
        self.short = False  # ``read`` ran dry before ``length`` bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._pending:
            if self._left > 0:
                self._pending = self._read(min(self._left, len(view)))
                self._left -= len(self._pending)
                if not self._pending:
                    self.short, self._left = True, 0
            if not self._pending and not self._probed:
                self._pending, self._probed = _END_PROBE, True
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def iter_frame(
    read: Callable[[int], bytes], length: int, limit: int, *, head: bytes = b""
) -> Iterator[bytes]:
    """Decompress one chunk payload of ``length`` bytes, read in order with ``read(n)`` (after
    ``head``, bytes already read from its start), in pieces of at most PIECE raw bytes.

    Memory is bounded by PIECE, the read size and MAX_WINDOW, never by what the frame claims:
    the header must declare its content size (at most ``limit``), and decompressing more or
    fewer bytes than declared, or a frame that does not end exactly at ``length``, is
    CorruptChunk.
    """
    if len(head) < min(length, FRAME_HEADER_MAX):
        head += read(min(length, FRAME_HEADER_MAX) - len(head))
    size = frame_content_size(head, limit)
    source = _FrameInput(head, read, length - len(head))
    # One decompressor per frame: a stream reader keeps state across yields, and two members
    # may be read in turns on one thread.
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    done = 0
    with dctx.stream_reader(
        source, read_size=_READ_SIZE, closefd=False  # type: ignore[arg-type] # reads .read()
    ) as stream:
        while True:
            try:
                # One byte beyond the declared size at most: enough to tell that it lied.
                piece = stream.read(min(PIECE, size - done + 1))
            except zstandard.ZstdError as exc:
                why = str(exc).removeprefix("zstd decompress error: ")
                raise CorruptChunk(f"does not decompress ({why})") from exc
            if not piece:
                break
            done += len(piece)
            if done > size:
                raise CorruptChunk(f"decompresses to more than the {size} bytes its frame "
                                   "header declares")
            yield piece
    if source.short:
        raise CorruptChunk("is cut short")
    if done != size:
        raise CorruptChunk(f"ends after {done} of the {size} bytes its frame header declares")


def decode_chunk(frame: bytes, limit: int = MAX_CHUNK_SIZE) -> bytes:
    """Decompress one whole chunk payload already in memory (at most ``limit`` raw bytes)."""
    data = io.BytesIO(frame)
    return b"".join(iter_frame(data.read, len(frame), limit))
