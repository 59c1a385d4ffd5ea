"""The sha256 and size of a stored object's bytes — as stored: the encrypted bytes of a
``.age`` backup — taken while it is written (:class:`DigestingSink`, for the sidecar) and
recomputed by reading it back by offset (:func:`object_digest`, for ``repo check``), so that
an encrypted backup can be proven intact without its identity. Flat memory both ways."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import ReadAt, Sink, iter_read

BLOCK = 8 << 20  # one ranged read per 8 MiB: few requests, memory bounded by one block


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str  # hex


class DigestingSink:
    """A :class:`Sink` that passes every byte to ``inner`` and hashes it on the way."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.inner.write(data)
        self._sha.update(data)
        self.size += len(data)

    def commit(self) -> None:
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()

    def digest(self) -> Digest:
        return Digest(self.size, self._sha.hexdigest())


def object_digest(source: ReadAt, *, block: int = BLOCK,
                  progress: Callable[[int], None] | None = None) -> Digest:
    """Read ``source`` front to back by offset and hash it (the caller closes it)."""
    sha = hashlib.sha256()
    size = 0
    for data in iter_read(source, block):
        sha.update(data)
        size += len(data)
        if progress is not None:
            progress(size)
    return Digest(size, sha.hexdigest())


class DigestingReader(io.RawIOBase):
    """A raw stream over ``source`` read by offset that hashes what it hands out — one read
    of an object serves both its digest and a consumer such as age decryption."""

    def __init__(self, source: ReadAt) -> None:
        super().__init__()
        self._source = source
        self._pos = 0
        self._sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._source.size - self._pos)
        if want <= 0:
            return 0
        data = self._source.read_at(self._pos, want)
        view[: len(data)] = data
        self._sha.update(data)
        self._pos += len(data)
        return len(data)

    def digest(self) -> Digest:
        """The digest of every byte handed out so far."""
        return Digest(self._pos, self._sha.hexdigest())


__all__ = ["BLOCK", "Digest", "DigestingReader", "DigestingSink", "object_digest"]
