"""Stream one table out with COPY (text format) into an archive member, compressing in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from ..archive import MemberInfo, MemberWriter
from .catalog import TableDef

FLUSH_BYTES = 4 << 20  # hand the compressor 4 MiB at a time: few thread hops, bounded memory


async def copy_table_out(
    conn: asyncpg.Connection,
    table: TableDef,
    member: MemberWriter,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, MemberInfo]:
    """COPY ``table`` into ``member``; returns (rows, member info). Memory stays ~2×FLUSH_BYTES."""
    buf = bytearray()
    pending: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()

    async def flush(data: bytes) -> None:
        nonlocal pending
        if pending is not None:
            await pending  # keep at most one compression in flight per table
        pending = loop.run_in_executor(None, member.write, data)

    async def sink(chunk: bytes) -> None:
        buf.extend(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
        if len(buf) >= FLUSH_BYTES:
            data = bytes(buf)
            buf.clear()
            await flush(data)

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
    if buf:
        await flush(bytes(buf))
    if pending is not None:
        await pending
    info = await loop.run_in_executor(None, member.close)
    return rows, info
