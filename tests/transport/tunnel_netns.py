"""A "server" in its own network namespace for the tunnel tests: PostgreSQL + sshd inside it.

Layout (root only; ``ip netns`` needs CAP_SYS_ADMIN):

    test process (host namespace)            namespace mmops-t<hex>
      10.203.X.1/30  ── veth pair ──  10.203.X.2/30   sshd listening here
                                      127.0.0.1       PostgreSQL listening here only

From the test process the database's TCP port cannot be reached at all (the namespace's loopback
is not ours, and PostgreSQL does not listen on the veth address); sshd can reach it, so a backup
that succeeds went through the SSH tunnel. (The unix socket in the cluster's dir is a file, not a
network endpoint: the harness uses it for setup and checks, the tool under test never does.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ops.config import RemoteSettings
from ops.dburl import DbUrl
from ops.sandbox.postgres import PostgresServer
from ops.sandbox.sshd import SSHD, SshServer, unique_login_user, write_private
from ops.ssh.connection import RemoteTarget

IP = shutil.which("ip") or "/usr/sbin/ip"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([IP, *args], env=_ENV, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {res.stderr.strip()}")
    return res


def netns_unavailable_reason() -> str | None:
    """Why the namespace harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: the test puts the database in its own network namespace (ip netns)"
    if not Path(IP).exists():
        return "iproute2's `ip` is not installed (apt-get install -y iproute2)"
    if not SSHD.exists():
        return f"OpenSSH server is not installed ({SSHD} missing)"
    return None


@dataclass
class NetnsPostgres(PostgresServer):
    """PostgresServer whose commands (pg_ctl → postmaster) run inside a network namespace."""

    netns: str = ""

    def _cmd(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        argv = [IP, "netns", "exec", self.netns, "runuser", "-u", "postgres", "--", *args]
        return subprocess.run(  # type: ignore[call-overload]
            argv, env=_ENV, capture_output=True, text=True, cwd="/", **kw
        )

    def socket_url(self, database: str) -> DbUrl:
        """Admin access for the harness (trust over the unix socket), never used by the tool."""
        return self.url(database, via_socket=True)


@dataclass
class NetnsSshServer(SshServer):
    """SshServer started inside a namespace, listening on that namespace's veth address."""

    address: str = "127.0.0.1"

    @property
    def host(self) -> str:
        return self.address

    def _write_configs(self) -> None:
        super()._write_configs()
        for path in (self.sshd_config, self.known_hosts, self.ssh_config):
            write_private(path, path.read_text().replace("127.0.0.1", self.address))

    def _banner_ok(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=1) as s:
                return s.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False


@dataclass
class TunnelServer:
    """What the tests see: the namespace, its database server and its sshd."""

    netns: str
    host_addr: str
    ns_addr: str
    pg: NetnsPostgres
    sshd: NetnsSshServer
    base: Path

    def settings(self, env_file: Path) -> RemoteSettings:
        return RemoteSettings(RemoteTarget(self.sshd.alias, self.sshd.ssh_config), str(env_file))

    def cli_args(self, env_file: Path) -> list[str]:
        return ["--host", self.sshd.alias, "--ssh-config", str(self.sshd.ssh_config),
                "--env-file", str(env_file)]

    def tcp_url(self, database: str, password: str | None = None) -> DbUrl:
        """The DATABASE_URL as the server knows it: 127.0.0.1 *inside* the namespace."""
        pw = self.pg.password if password is None else password
        return DbUrl("127.0.0.1", self.pg.port, database, self.pg.superuser, pw, {})

    def write_env_file(self, name: str, database: str, *, password: str | None = None) -> Path:
        url = self.tcp_url(database, password)
        text = (f"# test env file\nAPP_NAME=markdown-manager\nDATABASE_URL=postgresql+asyncpg://"
                f"{url.username}:{url.password}@{url.host}:{url.port}/{url.database}\n")
        return self.sshd.write_user_file(name, text)


def _free_subnet() -> int:
    used = _ip("-o", "-4", "addr", "show").stdout
    for _ in range(50):
        x = secrets.randbelow(250) + 1
        if f"10.203.{x}." not in used:
            return x
    raise RuntimeError("no free 10.203.X.0/30 subnet for the test namespace")


@contextlib.contextmanager
def tunnel_server() -> Iterator[TunnelServer]:
    """Create the namespace, veth pair, PostgreSQL and sshd; remove all of it on exit."""
    tag = secrets.token_hex(3)
    netns, veth_host, veth_ns = f"mmops-t{tag}", f"mmh{tag}", f"mmn{tag}"
    x = _free_subnet()
    host_addr, ns_addr = f"10.203.{x}.1", f"10.203.{x}.2"
    base = Path(tempfile.mkdtemp(prefix="mmops-test-tunnel-"))
    os.chmod(base, 0o711)  # the postgres OS user must pass through to its cluster dir
    pg: NetnsPostgres | None = None
    sshd: NetnsSshServer | None = None
    try:
        _ip("netns", "add", netns)
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("link", "add", veth_host, "type", "veth", "peer", "name", veth_ns)
        _ip("link", "set", veth_ns, "netns", netns)
        _ip("addr", "add", f"{host_addr}/30", "dev", veth_host)
        _ip("link", "set", veth_host, "up")
        _ip("-n", netns, "addr", "add", f"{ns_addr}/30", "dev", veth_ns)
        _ip("-n", netns, "link", "set", veth_ns, "up")

        from ops.sandbox.postgres import find_bindir

        pg = NetnsPostgres(base_dir=base / "pg", bindir=find_bindir("15"), netns=netns)
        pg.start()
        pg.wait_ready()

        wrapper = base / "sshd-in-netns"
        write_private(
            wrapper, f'#!/bin/sh\nexec {IP} netns exec {netns} {SSHD} "$@"\n', mode=0o700
        )
        sshd = NetnsSshServer(
            state_dir=base / "sshd", login_user=unique_login_user(), alias="mmops-tunnel-test",
            sshd_binary=wrapper, address=ns_addr,
        )
        sshd.start()
        yield TunnelServer(netns, host_addr, ns_addr, pg, sshd, base)
    finally:
        if sshd is not None:
            with contextlib.suppress(Exception):
                sshd.stop()
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.stop()
        _ip("netns", "del", netns, check=False)
        _ip("link", "del", veth_host, check=False)  # normally gone with its peer already
        shutil.rmtree(base, ignore_errors=True)


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state in this process's network namespace (/proc/net/tcp{,6})."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "0A":
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def tunnel_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("mmops-tunnel")]
