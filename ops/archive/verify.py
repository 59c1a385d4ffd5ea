"""Verify a whole backup file: structure, every chunk, every checksum.

One sequential pass from the header record to the manifest record does both jobs that
``verify`` promises: it checks the record stream's structure against the manifest (each member
begins once, every chunk belongs to a listed, open member and sits exactly at the offset the
manifest lists, each member ends with the size and checksum the manifest lists, nothing else
is in between) and it decompresses every chunk and recomputes every member's sha256.  Reading
front to back keeps I/O sequential; a few chunks are decompressed at once on a small thread pool
(python-zstandard releases the GIL) and hashed in file order, so memory stays at a few chunks.

``check_written`` is the check right after a backup is written: the same structural pass, and
instead of decompressing, the sha256 of every byte read back from the file (or the stored
object) must equal the sha256 the writer took of every byte it produced. That proves the file
holds exactly what was compressed and hashed in memory, at the cost of one sha256 over the
compressed bytes instead of decompressing and hashing all the raw bytes again; the full decode
is ``verify_archive`` (``mmops verify``, and before every restore).
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ops.errors import ArchiveError

from .format import (
    DEFAULT_CHUNK_SIZE,
    FRAME_HEADER_MAX,
    MAX_SMALL_JSON,
    REC_BEGIN,
    REC_CHUNK,
    REC_END,
    RECORD_HEADER_SIZE,
    CorruptChunk,
    decode_chunk,
    frame_content_size,
    iter_frame,
    unpack_record_header,
)
from .manifest import MemberInfo
from .reader import ArchiveReader, ReadAtStream, Source, corrupt_member
from .schema import BeginRecord, EndRecord, SchemaError, decode

VerifyProgress = Callable[[int, int, str], None]
"""Called after each chunk with (stored bytes checked, total stored bytes, member name)."""


@dataclass(frozen=True)
class VerifyReport:
    path: Path | str  # a file's path, or a stored object's url
    members: int
    raw_bytes: int
    stored_bytes: int
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "members": self.members,
            "raw_bytes": self.raw_bytes,
            "stored_bytes": self.stored_bytes,
            "ok": self.ok,
        }


@dataclass
class _Seen:
    info: MemberInfo
    next_chunk: int = 0
    raw_size: int = 0
    sha: Any = field(default_factory=hashlib.sha256)
    declared: int = 0  # raw bytes its chunks' frame headers declared so far
    ended: bool = False


def verify_archive(source: Source, progress: VerifyProgress | None = None) -> VerifyReport:
    """Check everything in a backup (path or ReadAt); raise ArchiveError naming the first bad
    member. A ReadAt source is read front to back in 8 MiB requests."""
    with ArchiveReader(source) as reader:
        if isinstance(source, (str, os.PathLike)):
            stream: BinaryIO = open(source, "rb", buffering=1 << 20)  # noqa: SIM115
            stream.seek(reader.data_start)
        else:
            raw = ReadAtStream(source, reader.data_start)
            stream = io.BufferedReader(raw, buffer_size=8 << 20)
        with stream, ThreadPoolExecutor(_THREADS, thread_name_prefix="mmops-verify") as pool:
            _Scan(reader, stream, progress, pool).run()
        return _report(reader)


def check_written(
    source: Source, sha256: str, progress: VerifyProgress | None = None
) -> VerifyReport:
    """The check after writing: the structure as ``verify_archive`` checks it, and the sha256
    of the whole file read back equal to ``sha256``, the digest the writer took of every byte it
    wrote (``ArchiveWriter.sha256``). Chunks are not decompressed."""
    with ArchiveReader(source) as reader:
        if isinstance(source, (str, os.PathLike)):
            raw: io.RawIOBase = open(source, "rb", buffering=0)  # noqa: SIM115
        else:
            raw = ReadAtStream(source, 0)
        hashing = _HashingRaw(raw)
        with io.BufferedReader(hashing, buffer_size=8 << 20) as stream:
            if len(stream.read(reader.data_start)) != reader.data_start:
                raise ArchiveError(f"Backup file {reader.path} is shorter than its header says.")
            _Scan(reader, stream, progress, None).run()
            while stream.read(8 << 20):  # the manifest record and the trailer
                pass
        if hashing.size != reader.size or hashing.sha.hexdigest() != sha256:
            raise ArchiveError(
                f"Backup file {reader.path} does not hold the bytes that were written to it "
                f"(read back {hashing.size} of {reader.size} bytes, and their sha256 differs).",
                hint="Check the disk or the storage, then back up again.",
            )
        return _report(reader)


def _report(reader: ArchiveReader) -> VerifyReport:
    return VerifyReport(
        path=reader.path,
        members=len(reader.members),
        raw_bytes=sum(m.raw_size for m in reader.members),
        stored_bytes=sum(m.stored_size for m in reader.members),
        ok=True,
    )


class _HashingRaw(io.RawIOBase):
    """A raw stream that hashes (sha256) and counts every byte read through it."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer) or 0
        if n:
            self.sha.update(memoryview(buffer)[:n])
            self.size += n
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


_THREADS = min(4, os.cpu_count() or 1)
_Record = TypeVar("_Record", BeginRecord, EndRecord)
# Chunks up to the default chunk size decompress on the pool, whole; bigger ones (whatever the
# file claims) are decompressed piece by piece in the scanning thread.
_POOLED_RAW = DEFAULT_CHUNK_SIZE
_POOLED_STORED = DEFAULT_CHUNK_SIZE + (64 << 10)  # incompressible data grows a little
_SKIP_BLOCK = 1 << 20


@dataclass
class _Decoding:
    """A chunk being decompressed in the pool, checked and hashed once its turn comes."""

    seen: _Seen
    index: int
    payload_offset: int
    length: int
    raw: Future[bytes]


class _Scan:
    def __init__(
        self,
        reader: ArchiveReader,
        stream: BinaryIO,
        progress: VerifyProgress | None,
        pool: ThreadPoolExecutor | None,
    ) -> None:
        """``pool`` None: check the structure only, without decompressing the chunks."""
        self.reader = reader
        self.pool = pool
        self.decoding: collections.deque[_Decoding] = collections.deque()
        self.path = reader.path
        self.stream = stream
        self.progress = progress
        self.listed = {member.name: member for member in reader.members}
        self.by_id: dict[int, _Seen] = {}
        self.begun: set[str] = set()
        self.done_stored = 0
        self.total_stored = sum(member.stored_size for member in reader.members)
        # payload offset -> member name, to name the member whose chunk header is damaged
        self.chunk_owner = {
            offset: member.name for member in reader.members for offset, _ in member.chunks
        }

    def run(self) -> None:
        try:
            self._walk()
        except ArchiveError:
            # A chunk before the damage may be bad too: report the first problem in file order.
            self._finish_chunks(0)
            raise
        finally:
            for pending in self.decoding:
                pending.raw.cancel()

    def _walk(self) -> None:
        pos = self.reader.data_start
        end = self.reader.data_end
        while pos < end:
            head = self.stream.read(RECORD_HEADER_SIZE)
            if len(head) < RECORD_HEADER_SIZE:
                raise self._record_error(pos, "is cut short")
            rtype, member_id, length = unpack_record_header(head)
            payload_offset = pos + RECORD_HEADER_SIZE
            if payload_offset + length > end:
                raise self._record_error(pos, "runs into the manifest")
            if rtype == REC_BEGIN:
                self._begin(pos, member_id, self._small(pos, length, BeginRecord))
            elif rtype == REC_CHUNK:
                self._chunk(pos, member_id, payload_offset, length)
            elif rtype == REC_END:
                self._end(pos, member_id, self._small(pos, length, EndRecord))
            else:
                raise self._record_error(pos, f"has the unexpected type {rtype!r}")
            pos = payload_offset + length
        self._finish_chunks(0)
        for name in self.listed:
            if name not in self.begun:
                raise corrupt_member(self.path, name, "is listed in the manifest but has no data")
        for seen in self.by_id.values():
            if not seen.ended:
                raise corrupt_member(self.path, seen.info.name, "has no end record")

    def _small(self, pos: int, length: int, schema: type[_Record]) -> _Record:
        if length > MAX_SMALL_JSON:
            raise self._stream_error(f"the record at offset {pos} is implausibly large")
        try:
            return decode(self.stream.read(length), schema, max_bytes=MAX_SMALL_JSON)[0]
        except SchemaError as exc:
            raise self._stream_error(f"the record at offset {pos} is garbled ({exc})") from exc

    def _begin(self, pos: int, member_id: int, body: BeginRecord) -> None:
        name = body.name
        if member_id != len(self.by_id) + 1:
            raise self._stream_error(f"the member record at offset {pos} is garbled")
        info = self.listed.get(name)
        if info is None:
            raise corrupt_member(self.path, name, f"begins at offset {pos} but is not listed")
        if name in self.begun:
            raise corrupt_member(self.path, name, f"begins a second time at offset {pos}")
        if body.kind != info.kind:
            raise corrupt_member(self.path, name, "has a different kind than its manifest entry")
        self.begun.add(name)
        self.by_id[member_id] = _Seen(info)

    def _open_member(self, pos: int, member_id: int) -> _Seen:
        seen = self.by_id.get(member_id)
        if seen is None:
            raise self._record_error(pos, "belongs to no member")
        if seen.ended:
            raise corrupt_member(self.path, seen.info.name, f"has a record after its end at {pos}")
        return seen

    def _chunk(self, pos: int, member_id: int, payload_offset: int, length: int) -> None:
        seen = self._open_member(pos, member_id)
        info = seen.info
        index = seen.next_chunk
        if index >= len(info.chunks) or info.chunks[index] != (payload_offset, length):
            raise corrupt_member(
                self.path, info.name, f"has a chunk at offset {payload_offset} its manifest lacks"
            )
        seen.next_chunk += 1
        where = f"chunk {index} at offset {payload_offset}"
        if self.pool is None:
            self._skip(length, info.name, where)
            self._stored(length, info.name)
            return
        head = self.stream.read(min(length, FRAME_HEADER_MAX))
        try:
            # Checked before decompressing: the frame's declared size against the chunk size
            # and what the manifest lists for the member.
            size = frame_content_size(
                head, min(self.reader.chunk_size, info.raw_size - seen.declared)
            )
        except CorruptChunk as exc:
            raise corrupt_member(self.path, info.name, f"{where} {exc}") from exc
        seen.declared += size
        if size <= _POOLED_RAW and length <= _POOLED_STORED:
            frame = head + self.stream.read(length - len(head))
            if len(frame) != length:
                raise corrupt_member(self.path, info.name, f"{where} is cut short")
            raw = self.pool.submit(decode_chunk, frame, size)
            self.decoding.append(_Decoding(seen, index, payload_offset, length, raw))
            self._finish_chunks(_THREADS + 1)
            return
        # A big chunk (a big chunk size, or a frame that says so): decompressed here piece by
        # piece and hashed as it goes, after the chunks in flight, so memory stays the same.
        self._finish_chunks(0)
        try:
            for piece in iter_frame(self.stream.read, length, size, head=head):
                seen.sha.update(piece)
                seen.raw_size += len(piece)
        except CorruptChunk as exc:
            raise corrupt_member(self.path, info.name, f"{where} {exc}") from exc
        self._stored(length, info.name)

    def _skip(self, length: int, name: str, where: str) -> None:
        """Read past ``length`` bytes of a chunk without holding them."""
        left = length
        while left > 0:
            got = len(self.stream.read(min(left, _SKIP_BLOCK)))
            if not got:
                raise corrupt_member(self.path, name, f"{where} is cut short")
            left -= got

    def _stored(self, length: int, name: str) -> None:
        self.done_stored += length
        if self.progress is not None:
            self.progress(self.done_stored, self.total_stored, name)

    def _finish_chunks(self, keep: int) -> None:
        """Check and hash decompressed chunks in file order until ``keep`` are in flight."""
        while self.decoding and (len(self.decoding) > keep or self.decoding[0].raw.done()):
            chunk = self.decoding.popleft()
            info = chunk.seen.info
            try:
                raw = chunk.raw.result()
            except CorruptChunk as exc:
                raise corrupt_member(
                    self.path, info.name, f"chunk {chunk.index} at offset {chunk.payload_offset} "
                    f"{exc}"
                ) from exc
            chunk.seen.sha.update(raw)
            chunk.seen.raw_size += len(raw)
            self._stored(chunk.length, info.name)

    def _end(self, pos: int, member_id: int, body: EndRecord) -> None:
        seen = self._open_member(pos, member_id)
        if any(chunk.seen is seen for chunk in self.decoding):
            self._finish_chunks(0)
        info = seen.info
        if seen.next_chunk != len(info.chunks) or body.chunk_count != len(info.chunks):
            raise corrupt_member(self.path, info.name, "has a different number of chunks")
        # Decompressed, the member's bytes speak for themselves; otherwise what its end record
        # says of them must agree with the manifest.
        raw_size: object
        digest: object
        if self.pool is not None:
            raw_size, digest = seen.raw_size, seen.sha.hexdigest()
        else:
            raw_size, digest = body.raw_size, body.sha256
        if raw_size != info.raw_size or body.raw_size != info.raw_size:
            raise corrupt_member(
                self.path, info.name, f"has {raw_size} bytes instead of {info.raw_size}"
            )
        if digest != info.sha256 or body.sha256 != info.sha256:
            raise corrupt_member(self.path, info.name, "does not match its sha256 checksum")
        seen.ended = True

    def _record_error(self, pos: int, what: str) -> ArchiveError:
        """A damaged record at ``pos``: name the member if the manifest puts a chunk there."""
        owner = self.chunk_owner.get(pos + RECORD_HEADER_SIZE)
        if owner is not None:
            return corrupt_member(
                self.path, owner, f"has a damaged chunk record at offset {pos} (it {what})"
            )
        return self._stream_error(f"the record at offset {pos} {what}")

    def _stream_error(self, what: str) -> ArchiveError:
        return ArchiveError(
            f"Backup file {self.path} is corrupt: {what}; "
            "restore from another backup or make a new one."
        )
