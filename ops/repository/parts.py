"""Multipart uploads: how big each part is, and where a part waits while it is filled.

Part size. Some S3-compatible stores cap an upload at 1,000 parts (S3 itself at 10,000) and R2
wants every part but the last to have the same size, so one size is chosen before the first
byte is sent: the smallest whole number of MiB that fits ``expected_size`` into
:data:`MAX_PARTS` parts, and never below :data:`MIN_PART_SIZE`. Without a hint the object is
assumed to be up to 1 TB, which gives 954 MiB parts; a caller that knows better (the
database's on-disk size is an upper bound for its compressed backup) passes ``size_hint`` and
gets 8 MiB parts for anything up to 8 GB.

Memory. A part is kept in memory up to :data:`PART_MEMORY` bytes and spills beyond that into
an unnamed temporary file (``O_TMPFILE`` on Linux, mode 0600), so a 954 MiB part costs disk,
not RAM: memory stays flat whatever the backup's size.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from typing import IO

MiB = 1 << 20
MIN_PART_SIZE = 8 * MiB
PROTOCOL_MIN_PART_SIZE = 5 * MiB  # S3's own floor for all parts but the last
MAX_PARTS = 1000
HARD_MAX_PARTS = 10_000  # S3's own limit; an object outgrowing its hint may use up to this
DEFAULT_EXPECTED_SIZE = 10**12  # 1 TB
PART_MEMORY = 16 * MiB


def choose_part_size(expected_size: int | None = None, *, minimum: int = MIN_PART_SIZE) -> int:
    """The equal part size for an object of up to ``expected_size`` bytes (1 TB if unknown)."""
    target = expected_size if expected_size and expected_size > 0 else DEFAULT_EXPECTED_SIZE
    per_part = -(-target // MAX_PARTS)
    per_part = -(-per_part // MiB) * MiB
    return max(minimum, per_part)


class PartBuffer:
    """One part being filled: bytes in memory up to PART_MEMORY, then in an unnamed temp file.

    Also keeps the part's MD5 for ``Content-MD5``: the one integrity header every S3-compatible
    store accepts, and the one AWS requires for uploads with Object Lock retention.
    """

    def __init__(self, number: int, memory: int = PART_MEMORY) -> None:
        self.number = number
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=memory)  # noqa: SIM115

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)
        self._md5.update(data)
        self.size += len(data)

    def content_md5(self) -> str:
        return base64.b64encode(self._md5.digest()).decode("ascii")

    def body(self) -> IO[bytes]:
        """The part's bytes as a seekable file positioned at its start."""
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()
