"""A local port forward over an open SSH transport: 127.0.0.1:<ephemeral> → host:port on the server.

Fabric's ``Connection.forward_local`` needs a fixed local port; the tunnel mode must never pick
one (another user could have it, or squat on it first), so this binds port 0 on 127.0.0.1 only and
reports the port the kernel chose.

Design (the shape of Fabric's ``TunnelManager``, written for this job): one *accept* thread waits
on the listening socket; for each accepted connection it opens a ``direct-tcpip`` channel on the
existing paramiko transport (the SSH server then connects to ``host:port`` from its side, so
``localhost`` means the server's own loopback) and starts one *pump* thread that copies bytes both
ways until either side ends. Every thread polls a stop event, so ``close()`` — called on success,
failure, Ctrl-C and SIGTERM alike through the context manager — ends the listener, every channel
and every thread: no listening port and no thread outlive the ``with`` block.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paramiko

from ..errors import RemoteError
from .reason import reason

LOOPBACK = "127.0.0.1"
POLL_S = 0.2
CHUNK = 256 * 1024
# Our receive window per channel. A backup streams server → laptop, and a window caps the
# throughput at window / round-trip time: paramiko's default 2 MiB allows 40 MB/s at 50 ms RTT,
# 16 MiB allows 320 MB/s. (On loopback it makes no measurable difference.)
WINDOW_SIZE = 16 * 1024 * 1024
MAX_PACKET = 32 * 1024
OPEN_TIMEOUT_S = 15.0
JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ForwardStats:
    """What went through a forward (plain data, for reports and benchmarks)."""

    connections: int
    bytes_to_server: int
    bytes_from_server: int
    open_errors: tuple[str, ...]


class _Pump(threading.Thread):
    """Copies bytes between one accepted socket and its channel until either side ends."""

    def __init__(self, forward: LocalForward, sock: socket.socket, chan: paramiko.Channel) -> None:
        super().__init__(name=f"mmops-tunnel-pump-{chan.get_id()}", daemon=True)
        self.forward = forward
        self.sock = sock
        self.chan = chan

    def run(self) -> None:
        try:
            self._copy()
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the peer went away; both ends are closed below either way
        finally:
            self.shutdown()

    def _copy(self) -> None:
        stop = self.forward.stop_event
        sock, chan = self.sock, self.chan
        while not stop.is_set():
            ready, _, _ = select.select([sock, chan], [], [], POLL_S)
            if sock in ready:
                data = sock.recv(CHUNK)
                if not data:
                    return
                chan.sendall(data)
                self.forward.count(up=len(data))
            if chan in ready:
                data = chan.recv(CHUNK)
                if not data:
                    return
                sock.sendall(data)
                self.forward.count(down=len(data))

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.chan.close()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class LocalForward:
    """Listen on 127.0.0.1:<ephemeral>; forward each connection to ``remote_host:remote_port``.

    Use as a context manager (``with LocalForward(transport, host, port) as fwd: fwd.port``).
    ``remote_host`` is resolved by the SSH server, so ``localhost`` is the server's loopback.
    """

    def __init__(
        self,
        transport: paramiko.Transport,
        remote_host: str,
        remote_port: int,
        *,
        window_size: int = WINDOW_SIZE,
        max_packet_size: int = MAX_PACKET,
    ) -> None:
        self.transport = transport
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.window_size = window_size
        self.max_packet_size = max_packet_size
        self.stop_event = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._pumps: list[_Pump] = []
        self._lock = threading.Lock()
        self._port = 0
        self._connections = 0
        self._up = 0
        self._down = 0
        self._open_errors: list[str] = []

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LocalForward:
        if not self.transport.is_active():
            raise RemoteError("The SSH connection is closed; cannot open the tunnel.")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))  # port 0: the kernel picks a free ephemeral port
            listener.listen(16)
        except OSError as exc:
            listener.close()
            raise RemoteError(
                f"Cannot open a local port for the SSH tunnel: {reason(exc)}."
            ) from exc
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"mmops-tunnel-accept-{self._port}", daemon=True
        )
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting, close every channel and socket, join every thread. Idempotent."""
        self.stop_event.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join(JOIN_TIMEOUT_S)
        with self._lock:
            pumps = list(self._pumps)
        for pump in pumps:
            pump.shutdown()
        for pump in pumps:
            pump.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> LocalForward:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- state ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The local port the kernel chose (0 before ``start``)."""
        return self._port

    @property
    def local_address(self) -> tuple[str, int]:
        return (LOOPBACK, self._port)

    @property
    def closed(self) -> bool:
        """True once the listener is closed and no thread of this forward is alive."""
        threads: list[Any] = [self._acceptor, *self._pumps]
        return self.stop_event.is_set() and not any(t is not None and t.is_alive()
                                                     for t in threads)

    def stats(self) -> ForwardStats:
        with self._lock:
            return ForwardStats(
                self._connections, self._up, self._down, tuple(self._open_errors)
            )

    def count(self, *, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self._up += up
            self._down += down

    # ---- channels ------------------------------------------------------------------------------
    def open_channel(self, src: tuple[str, int] = (LOOPBACK, 0)) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to the remote address; RemoteError when the server refuses."""
        try:
            return self.transport.open_channel(
                "direct-tcpip",
                (self.remote_host, self.remote_port),
                src,
                window_size=self.window_size,
                max_packet_size=self.max_packet_size,
                timeout=OPEN_TIMEOUT_S,
            )
        except paramiko.ChannelException as exc:
            why = exc.text or f"code {exc.code}"
            raise RemoteError(
                f"The SSH server could not connect to {self.remote_host}:{self.remote_port} "
                f"({why}).",
                hint="Check that PostgreSQL runs there and that the server allows TCP "
                "forwarding (sshd: AllowTcpForwarding yes).",
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(
                f"Opening the SSH tunnel to {self.remote_host}:{self.remote_port} failed: "
                f"{reason(exc)}."
            ) from exc

    def check(self) -> None:
        """Open and close one channel now, so an unreachable database fails with a clear reason."""
        chan = self.open_channel()
        chan.close()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self.stop_event.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], POLL_S)
                if not ready:
                    continue
                sock, peer = listener.accept()
            except (OSError, ValueError):  # closed by close()
                return
            try:
                chan = self.open_channel((peer[0], int(peer[1])))
            except RemoteError as exc:
                with self._lock:
                    self._open_errors.append(exc.message)
                with contextlib.suppress(OSError):
                    sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pump = _Pump(self, sock, chan)
            with self._lock:
                if self.stop_event.is_set():
                    pump.shutdown()
                    return
                self._connections += 1
                self._pumps = [p for p in self._pumps if p.is_alive()]
                self._pumps.append(pump)
            pump.start()


__all__ = ["ForwardStats", "LocalForward"]
