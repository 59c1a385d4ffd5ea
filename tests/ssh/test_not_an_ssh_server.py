"""A port that accepts TCP but never speaks SSH (a wrong Port, a firewall's tarpit, another
service): one sentence saying so, RemoteError's exit code, within the connect timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import MMOPS


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections and never writes a byte (nor closes them) until the test ends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def _remote_status(tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host silent\n"
        "    HostName 127.0.0.1\n"
        f"    Port {port}\n"
        "    User nobody\n"
        "    ConnectTimeout 2\n"
        f"    UserKnownHostsFile {tmp_path / 'known_hosts'}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "SSH_CONFIG", "OPS_DIR")}
    env.update(HOST="silent", SSH_CONFIG=str(config))
    return subprocess.run([str(MMOPS), "remote", "status"], env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_port_that_never_speaks_ssh_is_one_sentence_exit_10(
    silent_port: int, tmp_path: Path
) -> None:
    res = _remote_status(tmp_path, silent_port)
    assert res.returncode == 10, res.stderr  # RemoteError
    assert "Traceback" not in res.stderr and "paramiko" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert f"nobody@127.0.0.1:{silent_port} did not answer as an SSH server" in lines[0]
    # The banner wait is the connect timeout the operator set, not paramiko's fixed 15 s.
    assert "within 2 s" in lines[0]
