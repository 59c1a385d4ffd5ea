"""Stream one table out with COPY (text format) into an archive member.

The COPY stream arrives in pieces of up to 256 KiB; they are joined into whole chunks (one copy)
and handed to the member, whose compression runs on the archive's thread pool, so a big table
is compressed on every core while the next chunk is being received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from ..archive import MemberInfo, MemberWriter
from .catalog import TableDef


async def copy_table_out(
    conn: asyncpg.Connection,
    table: TableDef,
    member: MemberWriter,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, MemberInfo]:
    """COPY ``table`` into ``member``; returns (rows, member info).

    Memory stays at a few chunks: at most one ``member.write`` in flight per table, and the
    member bounds its own compressions in flight.
    """
    pieces: list[bytes] = []
    held = 0
    chunk = member.chunk_size
    pending: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()

    async def flush(data: memoryview) -> None:
        nonlocal pending
        if pending is not None:
            await pending  # one write in flight per table: backpressure on the COPY
        pending = loop.run_in_executor(None, member.write, data)

    async def sink(piece: bytes) -> None:
        nonlocal held
        pieces.append(piece)
        held += len(piece)
        if on_bytes is not None:
            on_bytes(len(piece))
        if held >= chunk:
            data = b"".join(pieces)  # immutable: the member compresses slices of it, no copy
            whole = len(data) - len(data) % chunk
            pieces.clear()
            held = len(data) - whole
            if held:
                pieces.append(data[whole:])
            await flush(memoryview(data)[:whole])

    # A table whose only columns are generated (or none at all) is copied without a column
    # list: COPY then emits one empty line per row, which COPY FROM reads back.
    status = await conn.copy_from_table(
        table.name,
        schema_name=table.schema,
        columns=list(table.columns) or None,
        output=sink,
        format="text",
    )
    rows = int(status.split()[-1]) if status else 0
    if pending is not None:
        await pending
    rest = b"".join(pieces)
    if pending is None and len(rest) <= _INLINE_BYTES:
        # A small table: writing and closing here costs less than two thread hops.
        member.write(rest)
        return rows, member.close()
    if rest:
        await loop.run_in_executor(None, member.write, rest)
    info = await loop.run_in_executor(None, member.close)
    return rows, info


_INLINE_BYTES = 64 << 10
