"""Write a backup file as one sequential stream, from one or several threads.

Parallelism model: every :class:`MemberWriter` buffers and hashes its own raw bytes (in the
calling thread) and hands each full chunk to the archive's pool of compression threads
(python-zstandard releases the GIL), so the chunks of ONE member -- a big table -- compress on
every core at once; it appends the finished frames in order, taking the :class:`ArchiveWriter`'s
lock only to append a record.  At most ``compress_threads + 1`` chunks of a member are in
flight (memory stays bounded); small chunks are compressed in the calling thread.  One member
is written by one thread at a time; different members may be written from different threads.

Atomicity: the file is created 0600 as ``.<name>.partial-<pid>-<random>`` next to the final
path and only :meth:`ArchiveWriter.commit` (manifest, trailer, fsync of file and directory) gives
it its final name.  Any failure, :meth:`ArchiveWriter.abort` or leaving the ``with`` block
without a commit removes the partial file; a partial file whose writer was killed carries the
dead pid, so the next run removes it at once (``LocalRepository.remove_stale_partials``).

A full disk (ENOSPC, EDQUOT) is the environment's fault, not the file's: it raises
:class:`~ops.errors.ConfigError` naming the directory, what was written and what is free.

Sinks: :meth:`ArchiveWriter.to_sink` writes the same bytes into a ``Sink`` (an object-store
upload, an encrypting wrapper; see :mod:`ops.repository.base`) through a 1 MiB buffer; commit
and abort are the sink's, so the object has its name only once complete there too.
"""

from __future__ import annotations

import collections
import enum
import errno
import hashlib
import io
import os
import secrets
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from .._version import __version__
from ..errors import ArchiveError, ConfigError
from .format import (
    COMPRESSION,
    DEFAULT_CHUNK_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_CHUNK_SIZE,
    MAX_LEVEL,
    MAX_SMALL_JSON,
    REC_BEGIN,
    REC_CHUNK,
    REC_END,
    REC_HEADER,
    REC_MANIFEST,
    compress_chunk,
    dump_json,
    pack_fixed_header,
    pack_record_header,
    pack_trailer,
)
from .manifest import MemberInfo, build_manifest, parse_manifest
from .schema import BeginRecord, decode


class ArchiveSink(Protocol):
    """What the writer needs from a sink (``ops.repository.base.Sink``)."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class _SinkRaw(io.RawIOBase):
    """A sink as a raw stream for ``io.BufferedWriter``; drops data once discarded."""

    def __init__(self, sink: ArchiveSink) -> None:
        super().__init__()
        self.sink = sink
        self.discarded = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if not self.discarded:
            self.sink.write(view)
        return len(view)


class _State(enum.Enum):
    OPEN = "open"
    FAILED = "failed"  # a write failed: only abort() remains
    COMMITTED = "committed"
    ABORTED = "aborted"


class ArchiveWriter:
    """Create one backup file at ``final_path``; use as a context manager.

    ``level`` is the zstd level, ``chunk_size`` the raw bytes per compressed frame,
    ``compress_threads`` how many chunks compress at once (default: one per CPU, at most 4;
    memory per open member is about ``compress_threads + 2`` chunks).
    """

    def __init__(
        self,
        final_path: Path | None = None,
        *,
        level: int = 3,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        sink: ArchiveSink | None = None,
        name: str | None = None,
        compress_threads: int | None = None,
    ) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, not {chunk_size}")
        if level > MAX_LEVEL:
            # Higher levels need decoding windows above the reader's MAX_WINDOW.
            raise ValueError(f"level must be at most {MAX_LEVEL}, not {level}")
        if (final_path is None) == (sink is None):
            raise ValueError("give either final_path or sink")
        self.level = level
        self.chunk_size = chunk_size
        self.compress_threads = max(1, compress_threads or min(4, os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None  # started with the first big chunk
        self._lock = threading.Lock()
        self._state = _State.OPEN
        self._offset = 0
        self._sha = hashlib.sha256()  # of every byte written: check_written compares the file
        self._members: list[MemberWriter] = []  # in member-id order (id = index + 1)
        self._names: set[str] = set()
        self._sink_raw: _SinkRaw | None = None
        if sink is not None:
            # For messages and commit()'s return value: the object's name, not a local path.
            self.final_path = Path(name or getattr(sink, "name", None) or "backup")
            self.partial_path = self.final_path
            self._sink_raw = _SinkRaw(sink)
            self._file: BinaryIO = io.BufferedWriter(self._sink_raw, buffer_size=1 << 20)
            self._start()
            return
        assert final_path is not None
        self.final_path = Path(final_path)
        directory = self.final_path.parent
        self.partial_path = directory / partial_name(self.final_path.name)
        if self.final_path.exists():
            raise ArchiveError(
                f"Backup file {self.final_path} already exists; refusing to overwrite it."
            )
        try:
            fd = os.open(
                self.partial_path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                0o600,
            )
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise self._disk_full(exc) from exc
            raise ArchiveError(
                f"Cannot create a backup file in {directory}: {exc.strerror or exc}."
            ) from exc
        self._file = os.fdopen(fd, "wb")
        try:
            if hasattr(os, "fchmod"):  # not on Windows
                os.fchmod(fd, 0o600)  # whatever the umask did
        except BaseException:
            self.abort()
            raise
        self._start()

    @classmethod
    def to_sink(
        cls,
        sink: ArchiveSink,
        *,
        name: str | None = None,
        level: int = 3,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> ArchiveWriter:
        """Write the backup into ``sink`` (e.g. ``repo.create(name)``); ``commit`` commits it.

        The writer owns the sink from here: any failure or leaving the ``with`` block without a
        commit aborts it. ``name`` is only for messages (default: the sink's ``name``).
        """
        return cls(sink=sink, name=name, level=level, chunk_size=chunk_size)

    def _start(self) -> None:
        """Write the fixed header and the header record."""
        self.header: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "tool_version": __version__,
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "compression": COMPRESSION,
            "chunk_size": self.chunk_size,
        }
        try:
            with self._lock:
                self._write(pack_fixed_header())
                self._append_locked(REC_HEADER, 0, dump_json(self.header))
        except BaseException:
            self.abort()
            raise

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state is not _State.COMMITTED:
            self.abort()

    # -- public API --------------------------------------------------------------------------

    @property
    def sha256(self) -> str:
        """The sha256 of every byte written so far: the whole file's once committed."""
        return self._sha.hexdigest()

    @property
    def bytes_written(self) -> int:
        """Bytes appended to the file so far (its size once buffers are flushed)."""
        return self._offset

    def open_member(self, name: str, kind: str) -> MemberWriter:
        """Start a member; write it with :meth:`MemberWriter.write`, finish with ``close()``."""
        with self._lock:
            self._check_open_locked()
            if name in self._names:
                raise ValueError(f"member {name!r} was already added to {self.partial_path}")
            decode(dump_json({"name": name, "kind": kind}), BeginRecord,
                   max_bytes=MAX_SMALL_JSON)  # the reader's rules for names and kinds
            member = MemberWriter(self, len(self._members) + 1, name, kind)
            self._append_locked(
                REC_BEGIN, member.member_id, dump_json({"name": name, "kind": kind})
            )
            self._names.add(name)
            self._members.append(member)
        return member

    def add_member(self, name: str, kind: str, data: bytes) -> MemberInfo:
        """Write a small member in one go."""
        member = self.open_member(name, kind)
        member.write(data)
        return member.close()

    def commit(self, meta: dict[str, Any]) -> Path:
        """Append the manifest (``meta`` + members) and trailer, fsync, rename; return the path.

        Every member must be closed.  On any failure the partial file is removed.
        """
        try:
            with self._lock:
                self._check_open_locked()
                infos = []
                for member in self._members:
                    if member.info is None:
                        raise RuntimeError(f"member {member.name!r} is still open at commit")
                    infos.append(member.info)
                self._stop_pool()
                manifest = dump_json(build_manifest(meta, self.header, infos))
                try:
                    parse_manifest(manifest)  # never write a file the reader refuses
                except ValueError as exc:
                    raise ArchiveError(
                        f"The manifest of {self.final_path} does not pass its own schema: {exc}."
                    ) from exc
                manifest_offset = self._append_locked(REC_MANIFEST, 0, manifest)
                self._write(pack_trailer(manifest_offset, manifest))
                if self._sink_raw is not None:
                    self._file.flush()  # the sink's own errors (RepositoryError) pass through
                    self._sink_raw.sink.commit()
                    self._state = _State.COMMITTED
                    return self.final_path
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                    self._file.close()
                    _link_no_clobber(self.partial_path, self.final_path)
                    try:
                        _fsync_dir(self.final_path.parent)
                    except OSError:
                        # The name is not durable and we report failure: take it back.
                        os.unlink(self.final_path)
                        raise
                except FileExistsError as exc:
                    raise ArchiveError(
                        f"Backup file {self.final_path} already exists; refusing to overwrite it."
                    ) from exc
                except OSError as exc:
                    if exc.errno in _DISK_FULL:
                        raise self._disk_full(exc) from exc
                    raise ArchiveError(
                        f"Could not finish backup file {self.final_path}: {exc.strerror or exc}."
                    ) from exc
                self._state = _State.COMMITTED
        except BaseException:
            self.abort()
            raise
        return self.final_path

    def abort(self) -> None:
        """Discard the partial file.  Safe to call more than once; no-op after commit."""
        with self._lock:
            if self._state in (_State.COMMITTED, _State.ABORTED):
                return
            self._state = _State.ABORTED
            self._stop_pool()
            if self._sink_raw is not None:
                self._sink_raw.discarded = True  # closing must not push the buffer on
                try:
                    self._sink_raw.sink.abort()
                finally:
                    self._file.close()
                return
            try:
                self._file.close()
            except OSError:
                pass  # the file is being thrown away; a failed flush changes nothing
            try:
                os.unlink(self.partial_path)
            except FileNotFoundError:
                pass

    # -- used by MemberWriter ----------------------------------------------------------------

    def _compress_async(self, raw: bytes | bytearray | memoryview) -> Future[bytes]:
        """Compress ``raw`` (which must not change until the future is done) in the pool."""
        with self._lock:
            self._check_open_locked()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.compress_threads, thread_name_prefix="mmops-compress"
                )
            return self._pool.submit(compress_chunk, raw, self.level)

    def _stop_pool(self) -> None:
        """Called under the lock at commit/abort: pending compressions are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _append(self, rtype: bytes, member_id: int, payload: bytes) -> int:
        """Append one record; return the file offset of its payload."""
        with self._lock:
            self._check_open_locked()
            return self._append_locked(rtype, member_id, payload)

    def _append_locked(self, rtype: bytes, member_id: int, payload: bytes) -> int:
        self._write(pack_record_header(rtype, member_id, len(payload)))
        payload_offset = self._offset
        self._write(payload)
        return payload_offset

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            # Keep the file consistent for nobody: later appends from other threads must fail too.
            self._state = _State.FAILED
            if exc.errno in _DISK_FULL:
                raise self._disk_full(exc) from exc
            raise ArchiveError(
                f"Could not write backup file {self.partial_path}: {exc.strerror or exc}."
            ) from exc
        except BaseException:
            self._state = _State.FAILED  # a sink's own error (RepositoryError) passes through
            raise
        self._offset += len(data)
        self._sha.update(data)

    def _disk_full(self, exc: OSError) -> ConfigError:
        """One sentence for a full disk (or quota): where, how much, and that nothing changed."""
        written = self._offset
        if self._sink_raw is not None:
            where = f"the storage receiving {self.final_path.name}"
            free = ""
        else:
            directory = self.partial_path.parent
            where = f"the disk holding {directory}"
            try:
                # What reached the disk, which includes the part of the write that failed.
                written = max(written, os.fstat(self._file.fileno()).st_size)
                free = f", {_size(shutil.disk_usage(directory).free)} free"
            except (OSError, ValueError, AttributeError):
                free = ""
        what = "full" if exc.errno == errno.ENOSPC else "over its quota"
        return ConfigError(
            f"Backup stopped: {where} is {what} ({exc.strerror or exc}) after "
            f"{_size(written)} of the backup were written{free}; the database was not "
            "changed and the partial file was removed. Free space there or write the backup "
            "to another directory."
        )

    def _check_open_locked(self) -> None:
        if self._state is not _State.OPEN:
            raise ArchiveError(
                f"Backup file {self.final_path} is already {self._state.value}; "
                "nothing more can be written to it."
            )


class MemberWriter:
    """Writes one member's bytes in chunks.  Not for use by two threads at once."""

    def __init__(self, archive: ArchiveWriter, member_id: int, name: str, kind: str) -> None:
        self._archive = archive
        self.member_id = member_id
        self.name = name
        self.kind = kind
        self.info: MemberInfo | None = None
        self.chunk_size = archive.chunk_size
        self._buffer = bytearray()
        self._sha = hashlib.sha256()
        self._raw_size = 0
        self._chunks: list[tuple[int, int]] = []
        # Frames being compressed in the pool, oldest first; appended to the file in order.
        self._pending: collections.deque[Future[bytes]] = collections.deque()

    def __enter__(self) -> MemberWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.info is None:
            self.close()

    def write(self, raw: bytes | bytearray | memoryview) -> None:
        """Add raw bytes; full chunks go to the compression pool (waits when too many are).

        Whole chunks of an immutable ``bytes`` buffer are compressed without a copy, so the
        caller need not keep it; a mutable buffer's bytes are copied first.
        """
        if self.info is not None:
            raise ValueError(f"member {self.name!r} is already closed")
        view = memoryview(raw).cast("B")
        self._sha.update(view)
        self._raw_size += len(view)
        size = self.chunk_size
        if self._buffer:
            take = size - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < size:
                return
            self._emit(self._buffer)
            self._buffer = bytearray()
        while len(view) >= size:  # whole chunks straight from the caller's buffer
            chunk = view[:size]
            self._emit(chunk if chunk.readonly else bytes(chunk))
            view = view[size:]
        if view:
            self._buffer += view

    def close(self) -> MemberInfo:
        """Flush the last partial chunk, append the member-end record, return its manifest entry."""
        if self.info is not None:
            return self.info
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = bytearray()
        self._drain(0)
        digest = self._sha.hexdigest()
        end = {"raw_size": self._raw_size, "sha256": digest, "chunk_count": len(self._chunks)}
        self._archive._append(REC_END, self.member_id, dump_json(end))
        self.info = MemberInfo(
            name=self.name,
            kind=self.kind,
            raw_size=self._raw_size,
            stored_size=sum(length for _, length in self._chunks),
            sha256=digest,
            chunks=tuple(self._chunks),
        )
        return self.info

    def _emit(self, raw: bytes | bytearray | memoryview) -> None:
        """Compress one chunk (``raw`` is not changed afterwards by this writer)."""
        if len(raw) < _INLINE_BYTES and not self._pending:
            # A small table's only chunk: a thread hop would cost more than compressing it.
            self._append_frame(compress_chunk(raw, self._archive.level))
            return
        self._pending.append(self._archive._compress_async(raw))
        self._drain(self._archive.compress_threads + 1)

    def _drain(self, keep: int) -> None:
        """Append finished frames in order; wait until at most ``keep`` are in flight."""
        pending = self._pending
        while pending and (len(pending) > keep or pending[0].done()):
            future = pending.popleft()
            if future.cancelled():  # the archive was aborted meanwhile
                self._archive._append(REC_CHUNK, self.member_id, b"")  # raises "aborted"
            self._append_frame(future.result())

    def _append_frame(self, frame: bytes) -> None:
        offset = self._archive._append(REC_CHUNK, self.member_id, frame)
        self._chunks.append((offset, len(frame)))


_INLINE_BYTES = 64 << 10
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def partial_name(final_name: str) -> str:
    """``.NAME.partial-PID-RANDOM``: hidden, unpredictable, and owned by this process's pid."""
    return f".{final_name}.partial-{os.getpid()}-{secrets.token_hex(8)}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def _link_no_clobber(partial: Path, final: Path) -> None:
    """Give ``partial`` the name ``final`` atomically, never replacing an existing file."""
    try:
        os.link(partial, final)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: rename, after a (racy but honest) existence check.
        if final.exists():
            raise FileExistsError(final) from None
        os.rename(partial, final)
        return
    os.unlink(partial)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); Windows cannot open directories and needs no fsync."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ArchiveWriter", "MemberWriter"]
