"""The backup file format: one streamable ``.mmops`` file per backup.

Layout, from :mod:`ops.archive.format`::

    MAGIC+version | H header JSON | B/C/E member records (interleaved) | M manifest | trailer

Write with :class:`ArchiveWriter` (thread-safe, strictly sequential, atomic rename on commit),
read with :class:`ArchiveReader` / :func:`read_manifest` (O(1), no decompression), check
everything with :func:`verify_archive`.  Backups are named ``<db>-<UTC timestamp>.mmops``.

A file is untrusted input: every JSON record passes its declared, bounded schema
(:mod:`ops.archive.schema`) before anything reads it, and chunks decompress in bounded pieces
whatever their frames claim (:func:`ops.archive.format.iter_frame`).
"""

from __future__ import annotations

from .format import FILE_SUFFIX, FORMAT_VERSION
from .manifest import MemberInfo
from .reader import ArchiveReader, read_manifest
from .verify import VerifyReport, check_written, verify_archive
from .writer import ArchiveWriter, MemberWriter

__all__ = [
    "FILE_SUFFIX",
    "FORMAT_VERSION",
    "ArchiveReader",
    "ArchiveWriter",
    "MemberInfo",
    "MemberWriter",
    "VerifyReport",
    "check_written",
    "read_manifest",
    "verify_archive",
]
