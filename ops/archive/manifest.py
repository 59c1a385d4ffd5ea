"""The manifest: the engine's metadata plus what the archive knows about each member."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from .format import COMPRESSION, FORMAT_NAME, FORMAT_VERSION

RESERVED_KEYS = ("format", "format_version", "compression", "members")

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    def from_json(cls, obj: Any) -> MemberInfo:
        """Parse and validate one manifest entry; ValueError says what is wrong with it."""
        if not isinstance(obj, dict):
            raise ValueError("a member entry is not a JSON object")
        name, kind = obj.get("name"), obj.get("kind")
        if not isinstance(name, str) or not isinstance(kind, str):
            raise ValueError("a member entry has no name or kind")
        raw_chunks = obj.get("chunks")
        if not isinstance(raw_chunks, list):
            raise ValueError(f"member {name!r} has no chunk list")
        chunks = []
        for item in raw_chunks:
            if not (isinstance(item, list) and len(item) == 2 and all(_is_count(v) for v in item)):
                raise ValueError(f"member {name!r} has a malformed chunk entry")
            chunks.append((item[0], item[1]))
        raw_size, stored_size, sha256 = (
            obj.get("raw_size"),
            obj.get("stored_size"),
            obj.get("sha256"),
        )
        if not (_is_count(raw_size) and _is_count(stored_size)):
            raise ValueError(f"member {name!r} has invalid sizes")
        if not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
            raise ValueError(f"member {name!r} has an invalid sha256")
        if obj.get("chunk_count") != len(chunks):
            raise ValueError(f"member {name!r} has a chunk count that disagrees with its chunks")
        if sum(length for _, length in chunks) != stored_size:
            raise ValueError(f"member {name!r} has a stored size that disagrees with its chunks")
        return cls(name, kind, raw_size, stored_size, sha256, tuple(chunks))


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
    manifest.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        compression=COMPRESSION,
        members=[member.to_json() for member in members],
    )
    return manifest


def parse_members(manifest: dict[str, Any]) -> list[MemberInfo]:
    """The manifest's member list; ValueError on anything malformed or duplicated."""
    entries = manifest.get("members")
    if not isinstance(entries, list):
        raise ValueError("the manifest has no member list")
    members = [MemberInfo.from_json(entry) for entry in entries]
    seen: set[str] = set()
    for member in members:
        if member.name in seen:
            raise ValueError(f"member {member.name!r} is listed twice")
        seen.add(member.name)
    return members
