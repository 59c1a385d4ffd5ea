"""The declared schemas of every JSON document in a backup file, checked before anything reads it.

A backup may come from anywhere (an upload, a bucket, a damaged disk), so its JSON is untrusted
input: each document is decoded by msgspec straight into the types declared here, with bounds on
its size, its nesting depth, every string's length, every list's length and every count's sign.
Whatever fails is one :class:`SchemaError` sentence; the rest of the code sees only values that
passed.  Unknown keys are tolerated (a newer writer may add fields, e.g. the pg_dump schema
member's ``schema_format``); known keys are typed.

Nesting depth: msgspec has no depth option, and its own recursion guard depends on the caller's
stack (a deep document raises RecursionError, not a decode error).  So the untyped parts of a
document (unknown keys) are decoded as :data:`Json`, a JSON value type declared
:data:`MAX_DEPTH` levels deep: anything deeper is a validation error found by msgspec itself,
before it recurses further.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec

from .format import MAX_CHUNK_SIZE

MAX_DEPTH = 8
"""How deep any JSON document in a backup (or a sidecar) may nest: the manifest needs 4."""

_Scalar = Union[str, int, float, bool, None]  # noqa: UP007 - a runtime value, for msgspec


def _json_type(depth: int) -> Any:
    """The type of a JSON value nesting at most ``depth`` arrays/objects."""
    value: Any = _Scalar
    for _ in range(depth):
        value = Union[_Scalar, list[value], dict[str, value]]  # noqa: UP007 - built at runtime
    return value


Json = _json_type(MAX_DEPTH - 1)
"""Any JSON value at most ``MAX_DEPTH - 1`` levels deep (a document's values)."""

JsonObject = dict[str, Json]  # type: ignore[valid-type]
"""A JSON object at most ``MAX_DEPTH`` levels deep: the plain form of every document here."""

MAX_COUNT = (1 << 63) - 1  # sizes, offsets and row counts fit PostgreSQL's bigint and struct "Q"
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
Text = Annotated[str, msgspec.Meta(max_length=256)]
"""Short free text: versions, time zones, revisions, database names."""
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
"""A schema, table or column name (PostgreSQL's are at most 63 bytes; custom builds more)."""
Timestamp = Annotated[str, msgspec.Meta(max_length=64)]

MEMBER_NAME_PATTERN = r"\A[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}\Z"
MemberName = Annotated[str, msgspec.Meta(pattern=MEMBER_NAME_PATTERN)]
"""``schema.json``, ``data/00001``, ``schema/pre-data``: no spaces, quotes or control bytes."""
MemberKind = Annotated[str, msgspec.Meta(pattern=r"\A[a-z][a-z0-9_\-]{0,31}\Z")]
"""``schema``, ``table-data``, ``pg_dump``, ...: kinds are open-ended, but plain words."""
Sha256 = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{64}\Z")]

MAX_MEMBERS = 1 << 20
MAX_TABLES = 1 << 20
MAX_CHUNKS = 1 << 24
MAX_COLUMNS = 1600  # PostgreSQL's own limit per table


class Header(msgspec.Struct, frozen=True):
    """Record H: who wrote the file and how; ``chunk_size`` bounds every chunk's raw size."""

    chunk_size: Annotated[int, msgspec.Meta(gt=0, le=MAX_CHUNK_SIZE)]
    format: Text | None = None
    format_version: Count | None = None
    tool_version: Text | None = None
    created_at: Timestamp | None = None
    compression: Text | None = None


class BeginRecord(msgspec.Struct, frozen=True):
    """Record B: binds a member id to a name and kind."""

    name: MemberName
    kind: MemberKind


class EndRecord(msgspec.Struct, frozen=True):
    """Record E: what the writer counted and hashed of a member's raw bytes."""

    raw_size: Count
    sha256: Sha256
    chunk_count: Count


class MemberEntry(msgspec.Struct, frozen=True):
    """One entry of the manifest's ``members``; ``chunks`` are (payload offset, stored length)."""

    name: MemberName
    kind: MemberKind
    raw_size: Count
    stored_size: Count
    sha256: Sha256
    chunk_count: Count
    chunks: Annotated[list[tuple[Count, Count]], msgspec.Meta(max_length=MAX_CHUNKS)]


class TableEntry(msgspec.Struct, frozen=True):
    """One entry of the manifest's ``tables``: a table as (schema, name) and its data member."""

    schema: Identifier
    name: Identifier
    member: MemberName
    rows: Count
    raw_bytes: Count
    stored_bytes: Count
    columns: Annotated[list[Identifier], msgspec.Meta(max_length=MAX_COLUMNS)]


class Manifest(msgspec.Struct, frozen=True):
    """Record M: the archive's own keys and the engine's metadata, each typed and bounded.

    ``tables`` is required (the writer writes ``[]`` when given none): every restore path reads
    it.  The other engine keys are optional for files written before they existed.
    """

    format: Literal["markdown-manager-ops"]
    format_version: Count
    compression: Literal["zstd"]
    members: Annotated[list[MemberEntry], msgspec.Meta(max_length=MAX_MEMBERS)]
    tables: Annotated[list[TableEntry], msgspec.Meta(max_length=MAX_TABLES)]
    created_at: dt.datetime
    tool_version: Text
    tool: Text | None = None
    database: Text | None = None
    server_version: Text | None = None
    timezone: Text | None = None
    alembic_revision: Text | None = None
    schemas: Annotated[list[Identifier], msgspec.Meta(max_length=MAX_TABLES)] | None = None
    partial: bool | None = None
    sequences: Count | None = None
    schema_format: Literal["pg_dump"] | None = None  # schema.pgdump + catalog.json members
    pg_dump_version: Text | None = None
    large_objects: Count | None = None


# Built once: msgspec's module-level decode() would hash the nested JSON type on every call.
_PLAIN = msgspec.json.Decoder(JsonObject)


class SchemaError(ValueError):
    """A JSON document is not what its schema declares; ``str()`` is one short clause."""


T = TypeVar("T")


def decode(data: bytes, schema: type[T], *, max_bytes: int) -> tuple[T, dict[str, Any]]:
    """Decode one JSON object (at most ``max_bytes``, :data:`MAX_DEPTH` deep) into ``schema``.

    Returns (the typed value, the plain dict): the plain dict keeps unknown keys for callers
    that read the document as a dict, and is only returned once the typed decode passed.
    """
    if len(data) > max_bytes:
        raise SchemaError(f"it is {len(data)} bytes long, more than the {max_bytes} allowed")
    try:
        plain = _PLAIN.decode(data)
        typed = msgspec.convert(plain, schema)
    except msgspec.ValidationError as exc:
        if "got `array` - at `$[" in str(exc) or "got `object` - at `$[" in str(exc):
            # Only depth fails the plain type below the top (any JSON value is one otherwise).
            raise SchemaError(f"it nests deeper than {MAX_DEPTH} levels") from exc
        raise SchemaError(_clause(exc)) from exc
    except msgspec.DecodeError as exc:
        raise SchemaError(f"it is not valid JSON ({_clause(exc)})") from exc
    except UnicodeDecodeError as exc:  # msgspec's, for bytes inside a string
        raise SchemaError("it is not valid UTF-8") from exc
    return typed, plain


def _clause(exc: Exception) -> str:
    """msgspec's message (``Expected `int`, got `str` - at `$.tables[0].rows```) as a clause."""
    text = str(exc).replace(" - at ", " at ")
    return text[:1].lower() + text[1:]
