"""The SSH forwarder and the env-file reader against the real loopback sshd of the test session."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.dburl import parse_database_url
from ops.errors import ConfigError, RemoteError
from ops.sandbox.sshd import SshServer
from ops.ssh.connection import RemoteTarget, connect
from ops.ssh.env_file import database_address, read_remote_database_url
from ops.ssh.forward import LocalForward
from tests.transport.tunnel_netns import listening_ports, tunnel_threads

# ---- pure functions ------------------------------------------------------------------------


def test_database_address_is_as_the_server_sees_it() -> None:
    assert database_address(parse_database_url("postgresql://u:p@localhost/db")) == (
        "localhost", 5432)
    assert database_address(parse_database_url("postgresql+asyncpg://u:p@db.internal:6543/d")) \
        == ("db.internal", 6543)
    assert database_address(parse_database_url("postgresql://u:p@/db")) == ("localhost", 5432)


def test_unix_socket_database_url_is_refused_with_the_alternative() -> None:
    url = parse_database_url("postgresql://u@/db?host=/var/run/postgresql")
    with pytest.raises(ConfigError, match="unix socket /var/run/postgresql") as info:
        database_address(url)
    assert "db-backup-ops" in str(info.value)


# ---- against the real loopback sshd -----------------------------------------------------------


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1:<ephemeral>, one thread per connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _target(sshd: SshServer) -> RemoteTarget:
    return RemoteTarget(sshd.alias, sshd.ssh_config)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


@pytest.mark.sshd
def test_forward_carries_concurrent_connections_both_ways_then_closes_everything(
    sshd: SshServer,
) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    with echo_server() as echo_port, connect(_target(sshd)) as conn:
        transport = conn.client.get_transport()  # type: ignore[attr-defined]
        with LocalForward(transport, "127.0.0.1", echo_port) as fwd:
            assert fwd.local_address[0] == "127.0.0.1" and fwd.port in listening_ports()
            clients = [socket.create_connection(fwd.local_address) for _ in range(3)]
            results: list[bytes] = []

            def exchange(sock: socket.socket) -> None:
                sender = threading.Thread(target=sock.sendall, args=(payload,))
                sender.start()
                results.append(_recv_exactly(sock, len(payload)))
                sender.join()

            workers = [threading.Thread(target=exchange, args=(c,)) for c in clients]
            for w in workers:
                w.start()
            for w in workers:
                w.join(60)
            try:
                assert results == [payload] * 3
                # A pump counts a block after handing it on, so the client may hold every byte
                # a moment before the counter does: wait for the counters, never for a time.
                expected = 3 * len(payload)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    stats = fwd.stats()
                    if stats.bytes_to_server == stats.bytes_from_server == expected:
                        break
                    time.sleep(0.02)
                assert stats.connections == 3
                assert stats.bytes_to_server == stats.bytes_from_server == expected
                port = fwd.port
            except BaseException:
                for c in clients:
                    c.close()
                raise
        # closing the forward ends the still-open client connections too
        for c in clients:
            c.settimeout(5)
            assert c.recv(1) == b""
            c.close()
    assert fwd.closed and port not in listening_ports()
    assert tunnel_threads() == []


@pytest.mark.sshd
def test_unreachable_remote_port_gives_a_clear_error_and_no_hang(sshd: SshServer) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = int(closed.getsockname()[1])
    closed.close()
    with connect(_target(sshd)) as conn:
        transport = conn.client.get_transport()  # type: ignore[attr-defined]
        with LocalForward(transport, "127.0.0.1", dead_port) as fwd:
            with pytest.raises(RemoteError, match=f"could not connect to 127.0.0.1:{dead_port}"):
                fwd.check()
            client = socket.create_connection(fwd.local_address)
            client.settimeout(20)
            assert client.recv(1) == b""  # the forward drops a connection it cannot carry
            client.close()
            assert fwd.stats().open_errors
    assert fwd.closed


@pytest.mark.sshd
def test_env_file_is_read_over_ssh_and_its_problems_are_named(sshd: SshServer) -> None:
    good = sshd.write_user_file("tunnel-test/app.env",
                                "DATABASE_URL=postgresql://app:s3cret@localhost:5432/mm\n")
    locked = sshd.write_user_file("tunnel-test/locked.env", "DATABASE_URL=x\n")
    os.chmod(locked, 0)
    try:
        _check_env_reads(sshd, good, locked)
    finally:
        shutil.rmtree(good.parent, ignore_errors=True)


def _check_env_reads(sshd: SshServer, good: Path, locked: Path) -> None:
    with connect(_target(sshd)) as conn:
        url = read_remote_database_url(conn, str(good))
        assert (url.host, url.password, url.database) == ("localhost", "s3cret", "mm")
        assert read_remote_database_url(conn, "~/tunnel-test/app.env") == url
        with pytest.raises(ConfigError, match="does not exist on the server"):
            read_remote_database_url(conn, str(good.parent / "missing.env"))
        with pytest.raises(ConfigError, match=r"not readable by the SSH login user and "
                           r"`sudo -n cat` was refused"):
            read_remote_database_url(conn, str(locked))


@pytest.mark.sshd
def test_cli_refuses_an_unknown_host_key_then_names_an_unreachable_database(
    sshd: SshServer, tmp_path: Path
) -> None:
    """Through the real CLI: the host key is checked first (and only accepted on request); a
    database the server cannot reach is named as the server sees it."""
    from tests.cli_helpers import mmops

    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = int(closed.getsockname()[1])
    closed.close()
    env_file = sshd.write_user_file(
        "tunnel-cli/app.env", f"DATABASE_URL=postgresql://app:pw@localhost:{dead_port}/mm\n")
    known_hosts = tmp_path / "known_hosts"
    config = tmp_path / "ssh_config"
    config.write_text("\n".join(
        f"    UserKnownHostsFile {known_hosts}" if "UserKnownHostsFile" in line else line
        for line in sshd.ssh_config.read_text().splitlines()) + "\n")
    args = ["tunnel", "backup", "--host", sshd.alias, "--ssh-config", str(config),
            "--env-file", str(env_file), "--backup-dir", str(tmp_path / "backups")]
    try:
        res = mmops(*args)
        assert res.returncode == 11, res.stderr
        assert sshd.host_key_fingerprint in res.stderr and "--accept-new-host-key" in res.stderr

        res = mmops(*args, "--accept-new-host-key")
        assert res.returncode == RemoteError.exit_code, res.stderr
        assert f"could not connect to localhost:{dead_port}" in res.stderr
        assert "Traceback" not in res.stderr
        assert sshd.host_public_key.split()[1] in known_hosts.read_text()
        assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    finally:
        shutil.rmtree(env_file.parent, ignore_errors=True)
