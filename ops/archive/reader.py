"""Open a backup file: check its header and trailer, load the manifest, read members.

Opening costs O(1) reads (fixed header, header record, trailer, manifest); data is only read,
decompressed and checksummed when a member is asked for.  Reads are positional (``pread`` on a
local file, ranged requests on a stored object), so one reader may serve several threads
reading different members.

The source is a local path (opened and closed by the reader) or any ``ReadAt`` from
:mod:`ops.repository.base` (an object in S3/GCS, a decrypted stream's spool...), which the
caller keeps owning: the reader never closes it.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Union

from ops.errors import ArchiveError, FormatVersionError

from .format import (
    FIXED_HEADER_SIZE,
    FORMAT_VERSION,
    MAGIC,
    MAX_CHUNK_SIZE,
    MAX_MANIFEST,
    MAX_SMALL_JSON,
    MAX_SMALL_MEMBER,
    REC_CHUNK,
    REC_HEADER,
    REC_MANIFEST,
    RECORD_HEADER_SIZE,
    RECORD_TYPES,
    TRAILER_MAGIC,
    TRAILER_SIZE,
    CorruptChunk,
    iter_frame,
    unpack_fixed_header,
    unpack_record_header,
    unpack_trailer,
)
from .manifest import MemberInfo, parse_manifest
from .schema import Header, Manifest, SchemaError, decode


class ReadAtSource(Protocol):
    """What the reader needs from a non-file source (``ops.repository.base.ReadAt``)."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes: ...


Source = Union[str, "os.PathLike[str]", ReadAtSource]
"""A backup to read: a local path, or a ReadAt source."""


def source_label(source: Source) -> Path | str:
    """How messages name a source: its path, else its ``url``/``name``, else a generic phrase."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    for attr in ("url", "name"):
        value = getattr(source, attr, None)
        if isinstance(value, str) and value:
            return value
    return "(stream)"


class ReadAtStream(io.RawIOBase):
    """Sequential reads over a ReadAt source from ``offset`` (wrap in ``io.BufferedReader``)."""

    def __init__(self, source: ReadAtSource, offset: int = 0) -> None:
        super().__init__()
        self._source = source
        self._pos = offset

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def corrupt_member(path: Path | str, name: str, what: str) -> ArchiveError:
    """The one-sentence error for a damaged member."""
    return ArchiveError(
        f"Backup file {path} is corrupt: member {name!r} {what}; "
        "restore from another backup or make a new one."
    )


class ArchiveReader:
    """Read-only view of one backup file; use as a context manager.

    Attributes: ``header`` (the header record), ``manifest`` (the whole manifest dict),
    ``members`` (its member list), ``data_start``/``data_end`` (the byte range of the
    member records, between the header record and the manifest record).
    """

    header: dict[str, Any]
    manifest: dict[str, Any]
    typed_manifest: Manifest
    members: list[MemberInfo]
    data_start: int
    data_end: int
    size: int

    path: Path | str  # the file's path, or the source's url/name (for messages)

    def __init__(self, source: Source) -> None:
        self.path = source_label(source)
        self._fd = -1
        self._source: ReadAtSource | None = None
        if isinstance(source, (str, os.PathLike)):
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError as exc:
                raise ArchiveError(f"Backup file {self.path} does not exist.") from exc
            except OSError as exc:
                raise ArchiveError(
                    f"Cannot open backup file {self.path}: {exc.strerror}."
                ) from exc
        else:
            self._source = source
        self._seek_lock = threading.Lock()  # only used where pread is unavailable
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        self._by_name = {member.name: member for member in self.members}

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- members ---------------------------------------------------------------------------

    @property
    def chunk_size(self) -> int:
        """The largest raw size a chunk of this file may have."""
        return int(self.header["chunk_size"])

    def member(self, name: str) -> MemberInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise ArchiveError(f"Backup file {self.path} has no member {name!r}.") from None

    def read_member(self, name: str, *, max_size: int = MAX_SMALL_MEMBER) -> bytes:
        """A small member's whole content, checksum verified; ArchiveError if its manifest entry
        lists more than ``max_size`` bytes (the data is held to what the entry lists)."""
        info = self.member(name)
        if info.raw_size > max_size:
            raise corrupt_member(self.path, name, f"lists {info.raw_size} bytes, more than the "
                                 f"{max_size} a member read whole may have")
        return b"".join(self.iter_member(name))

    def iter_member(self, name: str, *, verify: bool = True) -> Iterator[bytes]:
        """Yield a member's decompressed bytes in order, in pieces of at most PIECE bytes.

        Every chunk must be one complete zstd frame whose own checksum holds, and no chunk may
        declare more bytes than the manifest lists for the member (checked before it is
        decompressed); at the end the total size must match the manifest and, with ``verify``,
        so must the sha256.  Errors are raised where they are found, so a consumer may already
        hold earlier pieces: a restore must treat the stream as untrusted until the iterator is
        exhausted.
        """
        info = self.member(name)
        sha = hashlib.sha256() if verify else None
        total = 0
        for index in range(len(info.chunks)):
            for raw in self._iter_chunk(info, index, info.raw_size - total):
                total += len(raw)
                if sha is not None:
                    sha.update(raw)
                yield raw
        if total != info.raw_size:
            raise corrupt_member(
                self.path, name, f"has {total} bytes instead of the {info.raw_size} listed"
            )
        if sha is not None and sha.hexdigest() != info.sha256:
            raise corrupt_member(self.path, name, "does not match its sha256 checksum")

    def _iter_chunk(self, info: MemberInfo, index: int, left: int) -> Iterator[bytes]:
        """Decompress chunk ``index`` of ``info`` piece by piece, checking its record header and
        frame; ``left``: the member's bytes not yet read, which the frame may not exceed."""
        offset, length = info.chunks[index]
        where = f"chunk {index} at offset {offset}"
        head = self._read_at(offset - RECORD_HEADER_SIZE, RECORD_HEADER_SIZE)
        if len(head) != RECORD_HEADER_SIZE:
            raise corrupt_member(self.path, info.name, f"{where} is cut short")
        rtype, _member_id, rec_len = unpack_record_header(head)
        if rtype != REC_CHUNK or rec_len != length:
            raise corrupt_member(self.path, info.name, f"{where} is not where the manifest says")
        position = offset

        def read(size: int) -> bytes:
            nonlocal position
            data = self._read_at(position, size)
            position += len(data)
            return data

        limit = min(self.chunk_size, left)
        try:
            yield from iter_frame(read, length, limit)
        except CorruptChunk as exc:
            raise corrupt_member(self.path, info.name, f"{where} {exc}") from exc

    # -- opening ---------------------------------------------------------------------------

    def _load(self) -> None:
        if self._source is not None:
            self.size = int(self._source.size)
        else:
            self.size = os.fstat(self._fd).st_size
        head = self._read_at(0, FIXED_HEADER_SIZE)
        if len(head) < FIXED_HEADER_SIZE or not head.startswith(MAGIC):
            if head and (MAGIC.startswith(head) or head.startswith(MAGIC)):
                raise self._truncated()
            raise ArchiveError(f"{self.path} is not a markdown-manager-ops backup.")
        _magic, version = unpack_fixed_header(head)
        self._check_version(version)
        self.header = self._load_header()
        self.data_start = FIXED_HEADER_SIZE + RECORD_HEADER_SIZE + self._header_len
        manifest_offset, manifest_bytes = self._load_trailer()
        self.data_end = manifest_offset - RECORD_HEADER_SIZE
        try:
            parsed = parse_manifest(manifest_bytes)
        except ValueError as exc:
            raise self._invalid_manifest(str(exc)) from exc
        if parsed.typed.format_version != version:
            raise self._invalid_manifest("its format version disagrees with the header")
        manifest, members = parsed.plain, parsed.members
        previous_end = self.data_start
        for offset, length, name in sorted(
            (offset, length, member.name) for member in members for offset, length in member.chunks
        ):
            # Chunk records lie in the data area, one after another, never overlapping: so the
            # chunk lists are no longer than the file allows.
            if offset - RECORD_HEADER_SIZE < previous_end or offset + length > self.data_end:
                raise self._invalid_manifest(
                    f"member {name!r} has a chunk outside the data area or overlapping another"
                )
            previous_end = offset + length
        self.manifest = manifest
        self.members = members
        self.typed_manifest = parsed.typed

    def _check_version(self, version: int) -> None:
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{self.path} uses backup format version {version}, newer than the version "
                f"{FORMAT_VERSION} this markdown-manager-ops reads; upgrade markdown-manager-ops."
            )
        if version < FORMAT_VERSION:
            raise FormatVersionError(
                f"{self.path} uses the old backup format version {version}, which this "
                f"markdown-manager-ops (format {FORMAT_VERSION}) no longer reads; "
                "use an older release to read it."
            )

    def _load_header(self) -> dict[str, Any]:
        record = self._read_at(FIXED_HEADER_SIZE, RECORD_HEADER_SIZE)
        if len(record) < RECORD_HEADER_SIZE:
            raise self._truncated()
        rtype, member_id, length = unpack_record_header(record)
        if rtype != REC_HEADER or member_id != 0 or length > MAX_SMALL_JSON:
            raise ArchiveError(f"Backup file {self.path} is corrupt: its header record is garbled.")
        payload = self._read_at(FIXED_HEADER_SIZE + RECORD_HEADER_SIZE, length)
        if len(payload) < length:
            raise self._truncated()
        try:
            header = decode(payload, Header, max_bytes=MAX_SMALL_JSON)[1]
        except SchemaError as exc:
            raise ArchiveError(
                f"Backup file {self.path} is corrupt: its header record is garbled ({exc})."
            ) from exc
        self._header_len = length
        return header

    def _load_trailer(self) -> tuple[int, bytes]:
        """Return (manifest payload offset, manifest bytes) or raise 'truncated' / 'corrupt'."""
        if self.size < self.data_start + RECORD_HEADER_SIZE + TRAILER_SIZE:
            raise self._truncated()
        trailer = self._read_at(self.size - TRAILER_SIZE, TRAILER_SIZE)
        magic, offset, length, crc = unpack_trailer(trailer)
        if (
            magic != TRAILER_MAGIC
            or offset - RECORD_HEADER_SIZE < self.data_start
            or offset + length != self.size - TRAILER_SIZE
        ):
            raise self._unfinished_or_damaged()
        if length > MAX_MANIFEST:  # read nothing of it
            raise self._invalid_manifest(
                f"it is {length} bytes long, more than the {MAX_MANIFEST} allowed"
            )
        record = self._read_at(offset - RECORD_HEADER_SIZE, RECORD_HEADER_SIZE + length)
        rtype, member_id, rec_len = unpack_record_header(record[:RECORD_HEADER_SIZE])
        manifest = record[RECORD_HEADER_SIZE:]
        if rtype != REC_MANIFEST or member_id != 0 or rec_len != length:
            raise self._unfinished_or_damaged()
        if zlib.crc32(manifest) != crc:
            raise self._unfinished_or_damaged()
        return offset, manifest

    def _unfinished_or_damaged(self) -> ArchiveError:
        """A file without a valid end: tell a short file (the writer stopped) from a damaged one.

        The writer only appends, so a file cut short is an intact chain of records ending in a
        partial one. Walk the record headers from the first member record: a chain that runs
        to (or past) the end of the file without a complete manifest and trailer is truncated;
        a record that cannot be there, or a complete manifest record followed by exactly one
        trailer's worth of bytes that do not check out, is damage.
        """
        pos = self.data_start
        while pos + RECORD_HEADER_SIZE <= self.size:
            rtype, _member_id, length = unpack_record_header(
                self._read_at(pos, RECORD_HEADER_SIZE)
            )
            limit = MAX_MANIFEST if rtype == REC_MANIFEST else MAX_CHUNK_SIZE + MAX_SMALL_JSON
            if rtype not in RECORD_TYPES or rtype == REC_HEADER or length > limit:
                return self._damaged(f"the record at offset {pos} is garbled")
            end = pos + RECORD_HEADER_SIZE + length
            if rtype == REC_MANIFEST:
                if end > self.size or self.size - end < TRAILER_SIZE:
                    return self._truncated()
                if self.size - end == TRAILER_SIZE:
                    return self._damaged("its manifest or trailer does not match its checksum")
                return self._damaged(f"{self.size - end - TRAILER_SIZE} unexpected bytes follow "
                                     "its trailer")
            pos = end
        return self._truncated()

    def _damaged(self, what: str) -> ArchiveError:
        return ArchiveError(
            f"Backup file {self.path} is corrupt (complete, but damaged): {what}; "
            "restore from another backup or make a new one."
        )

    def _truncated(self) -> ArchiveError:
        started = ""
        header = getattr(self, "header", None)
        if header:
            started = (
                f"; it was started at {header.get('created_at')} by markdown-manager-ops "
                f"{header.get('tool_version')} and never finished"
            )
        return ArchiveError(
            f"Backup file {self.path} is truncated or incomplete (no valid trailer){started}."
        )

    def _invalid_manifest(self, why: str) -> ArchiveError:
        return ArchiveError(f"Backup file {self.path} has an invalid manifest: {why}.")

    def _read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at end of file)."""
        if offset < 0:
            return b""
        parts = []
        while size > 0:
            if self._source is not None:
                part = self._source.read_at(offset, size)
            elif hasattr(os, "pread"):
                part = os.pread(self._fd, size, offset)
            else:  # pragma: no cover - Windows
                with self._seek_lock:
                    os.lseek(self._fd, offset, os.SEEK_SET)
                    part = os.read(self._fd, size)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            size -= len(part)
        return b"".join(parts)


def read_manifest(source: Source) -> dict[str, Any]:
    """The manifest of a backup (path or ReadAt), reading no member data (for inspect)."""
    with ArchiveReader(source) as reader:
        return reader.manifest
