"""Open everything the tunnel mode needs in one place, and close it all however the block ends.

``tunnel_session(settings)``: the strict SSH connection → DATABASE_URL read from the server's env
file (memory only) → a forward from 127.0.0.1:<ephemeral> to the database as the server sees it,
checked once → a ``TunnelSession`` whose ``url`` points the engine at the forward. On exit the
forward (listener, channels, threads) and then the SSH connection are closed; database errors
raised inside the block are re-worded to name the real database instead of the local port.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..config import RemoteSettings
from ..dburl import DbUrl
from ..errors import DatabaseError, RemoteError
from ..ssh.connection import connect, describe
from ..ssh.env_file import database_address, read_remote_database_url
from ..ssh.forward import LocalForward


@dataclass(frozen=True)
class TunnelSession:
    """An open tunnel: ``url`` is the server's DATABASE_URL rewritten to the local forward."""

    settings: RemoteSettings
    ssh: str
    db_host: str
    db_port: int
    url: DbUrl
    forward: LocalForward
    conn: Any

    @property
    def local_port(self) -> int:
        return self.forward.port

    def describe(self) -> str:
        """``127.0.0.1:PORT → localhost:5432 on user@host:22`` (no secret)."""
        return (f"127.0.0.1:{self.local_port} → {self.db_host}:{self.db_port} on {self.ssh} "
                f"(SSH tunnel)")


def _reword(exc: DatabaseError, session: TunnelSession) -> DatabaseError:
    local = f"127.0.0.1:{session.local_port}"
    real = f"{session.db_host}:{session.db_port} (through the SSH tunnel to {session.ssh})"
    if local not in exc.message:
        return exc
    new = type(exc)(exc.message.replace(local, real), hint=exc.hint)
    new.__cause__ = exc.__cause__
    return new


@contextlib.contextmanager
def tunnel_session(settings: RemoteSettings) -> Iterator[TunnelSession]:
    """Connect, read DATABASE_URL on the server, open and check the forward; always close both."""
    with connect(settings.target) as conn:
        url = read_remote_database_url(conn, settings.env_file)
        db_host, db_port = database_address(url)
        transport = conn.client.get_transport()  # type: ignore[attr-defined]
        with LocalForward(transport, db_host, db_port) as forward:
            forward.check()
            session = TunnelSession(
                settings=settings,
                ssh=describe(conn),
                db_host=db_host,
                db_port=db_port,
                url=url.with_host_port("127.0.0.1", forward.port),
                forward=forward,
                conn=conn,
            )
            try:
                yield session
            except (DatabaseError, OSError, asyncpg.InterfaceError) as exc:
                if not transport.is_active():
                    raise RemoteError(
                        f"The SSH connection to {session.ssh} was lost while the database was "
                        "in use; a backup in progress was discarded, and PostgreSQL rolls back "
                        "a restore that had not finished.",
                        hint="Check the network and the server, then run the command again.",
                    ) from exc
                if not isinstance(exc, DatabaseError):
                    raise
                reworded = _reword(exc, session)
                if reworded is exc:
                    raise
                raise reworded from exc.__cause__


__all__ = ["TunnelSession", "tunnel_session"]
