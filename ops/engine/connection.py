"""Open asyncpg connections in one place and turn driver errors into our error tree."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import asyncpg

from ..dburl import DbUrl
from ..errors import AuthenticationError, DatabaseError
from .pg_errors import describe_pg_error

CONNECT_TIMEOUT = 15.0


def _describe(url: DbUrl) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


async def open_connection(url: DbUrl, *, application_name: str = "mmops") -> asyncpg.Connection:
    """Connect or raise a one-sentence DatabaseError that never contains the password."""
    kwargs = url.connect_kwargs()
    kwargs.setdefault("server_settings", {}).setdefault("application_name", application_name)
    try:
        return await asyncpg.connect(timeout=CONNECT_TIMEOUT, statement_cache_size=0, **kwargs)
    except asyncpg.InvalidPasswordError as exc:
        raise AuthenticationError(
            f"PostgreSQL at {_describe(url)} rejected the password for user "
            f"{url.username!r}; check DATABASE_URL."
        ) from exc
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise AuthenticationError(
            f"PostgreSQL at {_describe(url)} refused user {url.username!r}: "
            f"{describe_pg_error(exc)}."
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise DatabaseError(
            f"Database {url.database!r} does not exist on {_describe(url)}."
        ) from exc
    except (OSError, socket.gaierror, asyncio.TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else (
            exc.strerror or type(exc).__name__
        )
        raise DatabaseError(
            f"Cannot reach PostgreSQL at {_describe(url)} ({reason}); is the server running "
            "and the host/port in DATABASE_URL right?"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(
            f"PostgreSQL at {_describe(url)} refused the connection: "
            f"{describe_pg_error(exc)}."
        ) from exc


@contextlib.asynccontextmanager
async def connection(url: DbUrl, *, application_name: str = "mmops") -> AsyncIterator[
    asyncpg.Connection
]:
    conn = await open_connection(url, application_name=application_name)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), timeout=5)
        if not conn.is_closed():
            conn.terminate()


@contextlib.asynccontextmanager
async def snapshot_connections(
    url: DbUrl, jobs: int, *, lock_timeout: float = 30.0
) -> AsyncIterator[list[asyncpg.Connection]]:
    """``jobs`` connections reading ONE consistent snapshot (leader exports, workers import).

    The leader's transaction stays open for the whole ``with`` block: an exported snapshot is
    only importable while the exporting transaction lives. ``lock_timeout`` (seconds, 0 = wait
    forever) bounds every wait for a table lock held by someone else.
    """
    conns: list[asyncpg.Connection] = []
    try:
        leader = await open_connection(url, application_name="mmops backup")
        conns.append(leader)
        await leader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await _session_for_dump(leader, lock_timeout)
        snapshot = await leader.fetchval("SELECT pg_catalog.pg_export_snapshot()")
        for _ in range(max(0, jobs - 1)):
            worker = await open_connection(url, application_name="mmops backup worker")
            conns.append(worker)
            await worker.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await worker.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            await _session_for_dump(worker, lock_timeout)
        yield conns
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)
            if not conn.is_closed():
                conn.terminate()


async def _session_for_dump(conn: asyncpg.Connection, lock_timeout: float) -> None:
    # row_security=off makes COPY fail loudly instead of silently skipping rows hidden by RLS;
    # no statement timeout: a 50 GB table may take a while.
    await conn.execute(
        "SET LOCAL row_security = off; SET LOCAL statement_timeout = 0; "
        f"SET LOCAL lock_timeout = '{max(0, int(lock_timeout * 1000))}ms'; "
        "SET LOCAL idle_in_transaction_session_timeout = 0; "
        "SET LOCAL extra_float_digits = 3; SET LOCAL DateStyle = 'ISO, YMD'; "
        "SET LOCAL IntervalStyle = 'postgres'"
    )
