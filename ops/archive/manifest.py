"""The manifest: the engine's metadata plus what the archive knows about each member.

It is checked against :class:`ops.archive.schema.Manifest` (types and bounds) and then for
consistency (sizes agree with chunk lists, names are unique, every table's data member is
listed) by :func:`parse_manifest`, before any other code reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .format import COMPRESSION, FORMAT_NAME, FORMAT_VERSION, MAX_MANIFEST
from .schema import Manifest, MemberEntry, SchemaError, decode

RESERVED_KEYS = ("format", "format_version", "compression", "members")


@dataclass(frozen=True)
class MemberInfo:
    """One member as recorded in the manifest.

    ``chunks`` holds ``(offset, stored_len)`` of each chunk's zstd frame, in order; ``sha256``
    and ``raw_size`` describe the uncompressed bytes, ``stored_size`` the sum of the frames.
    """

    name: str
    kind: str
    raw_size: int
    stored_size: int
    sha256: str
    chunks: tuple[tuple[int, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "raw_size": self.raw_size,
            "stored_size": self.stored_size,
            "sha256": self.sha256,
            "chunk_count": len(self.chunks),
            "chunks": [[offset, length] for offset, length in self.chunks],
        }

    @classmethod
    def from_entry(cls, entry: MemberEntry) -> MemberInfo:
        """A validated manifest entry; SchemaError if its counts disagree with its chunk list."""
        chunks = tuple(entry.chunks)
        if entry.chunk_count != len(chunks):
            raise SchemaError(f"member {entry.name!r} has a chunk count that disagrees with its "
                             "chunks")
        if sum(length for _, length in chunks) != entry.stored_size:
            raise SchemaError(f"member {entry.name!r} has a stored size that disagrees with its "
                             "chunks")
        return cls(entry.name, entry.kind, entry.raw_size, entry.stored_size, entry.sha256, chunks)


@dataclass(frozen=True)
class ParsedManifest:
    """A manifest that passed its schema and the consistency checks."""

    plain: dict[str, Any]  # the whole document as a dict, unknown keys included
    typed: Manifest
    members: list[MemberInfo]


def parse_manifest(data: bytes) -> ParsedManifest:
    """Validate a manifest record's payload; ValueError says what is wrong with it."""
    typed, plain = decode(data, Manifest, max_bytes=MAX_MANIFEST)
    members = [MemberInfo.from_entry(entry) for entry in typed.members]
    names: set[str] = set()
    for member in members:
        if member.name in names:
            raise SchemaError(f"member {member.name!r} is listed twice")
        names.add(member.name)
    by_name = {member.name: member for member in members}
    tables: set[tuple[str, str]] = set()
    for table in typed.tables:
        key = (table.schema, table.name)
        if key in tables:
            raise SchemaError(f"table {key!r} is listed twice")
        tables.add(key)
        holder = by_name.get(table.member)
        if holder is None:
            raise SchemaError(f"table {key!r} names the member {table.member!r}, which is not "
                              "listed")
        if (table.raw_bytes, table.stored_bytes) != (holder.raw_size, holder.stored_size):
            raise SchemaError(f"table {key!r} lists other sizes than its member "
                              f"{table.member!r}")
    return ParsedManifest(plain, typed, members)


def build_manifest(
    meta: dict[str, Any], header: dict[str, Any], members: list[MemberInfo]
) -> dict[str, Any]:
    """Merge the engine's metadata with the archive's own keys (which meta may not override)."""
    clash = [key for key in RESERVED_KEYS if key in meta]
    if clash:
        raise ValueError(f"manifest metadata may not set the archive's own keys: {clash}")
    manifest = dict(meta)
    manifest.setdefault("tool_version", header["tool_version"])
    manifest.setdefault("created_at", header["created_at"])
    manifest.setdefault("tables", [])
    manifest.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        compression=COMPRESSION,
        members=[member.to_json() for member in members],
    )
    return manifest
