"""The SSH tunnel mode end to end: real sshd, real PostgreSQL, the database in its own network
namespace so that it is reachable ONLY through the tunnel (see tunnel_netns.py)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.archive import read_manifest
from ops.engine.results import Progress
from ops.errors import AuthenticationError, RemoteError
from ops.repository.local import LocalRepository
from ops.steps.results import BackupRequest
from ops.transport.tunnel import TunnelTransport
from ops.transport.tunnel_session import tunnel_session
from tests.cli_helpers import MMOPS
from tests.fidelity import data_digest, load_fixture
from tests.transport.tunnel_netns import (
    TunnelServer,
    listening_ports,
    netns_unavailable_reason,
    tunnel_server,
    tunnel_threads,
)

pytestmark = [pytest.mark.sshd, pytest.mark.postgres]

APP_SQL = """
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users, body text);
INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 50) g;
INSERT INTO notes (user_id, body) SELECT 1 + g % 50, md5(g::text) FROM generate_series(1, 500) g;
"""
# ~50 MB of COPY text: long enough through the tunnel to be interrupted mid-stream.
BIG_SQL = """
CREATE TABLE big (id int PRIMARY KEY, body text);
INSERT INTO big SELECT g, repeat(md5(g::text), 9) FROM generate_series(1, 160000) g;
"""


@pytest.fixture(scope="module")
def server() -> Iterator[TunnelServer]:
    reason = netns_unavailable_reason()
    if reason is not None:
        if os.geteuid() != 0:  # what the bootstrap cannot give; `ip` and sshd it installs
            pytest.skip(reason)
        pytest.fail(f"the tunnel tests cannot run: {reason} (scripts/bootstrap test installs it)")
    with tunnel_server() as srv:
        for db in ("src", "dst", "app", "big"):
            srv.pg.psql(f"CREATE DATABASE {db}")
        load_fixture(srv.pg, "src")
        srv.pg.psql(APP_SQL, "app")
        srv.pg.psql(BIG_SQL, "big")
        for db in ("src", "dst", "app", "big"):
            srv.write_env_file(f"{db}.env", db)
        srv.write_env_file("bad.env", "app", password="not-the-password")
        yield srv


def tunnel_backup(session, dest: Path, progress=None):  # type: ignore[no-untyped-def]
    """The tunnel transport's backup (the same call the CLI's job makes)."""
    return TunnelTransport(session, dest / "safety").backup(
        BackupRequest(), LocalRepository(dest), progress or (lambda _p: None))


def env_path(server: TunnelServer, name: str) -> Path:
    return server.sshd.home / name


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "HOST", "TABLES", "BACKUP", "YES", "ENV_FILE"}}
    full.update(env or {})
    return subprocess.run([str(MMOPS), *args], capture_output=True, text=True, env=full,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def files_in(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) \
        if directory.exists() else []


def assert_no_secret(server: TunnelServer, *texts: str) -> None:
    for text in texts:
        assert server.pg.password not in text


# ---- (2) the database is reachable only through the tunnel -----------------------------------


def test_database_is_unreachable_directly_and_the_backup_goes_through_the_tunnel(
    server: TunnelServer, tmp_path: Path
) -> None:
    for addr in ("127.0.0.1", server.ns_addr):
        with pytest.raises(OSError):
            socket.create_connection((addr, server.pg.port), timeout=3).close()

    async def direct() -> None:
        await asyncpg.connect(**server.tcp_url("app").connect_kwargs(), timeout=3)

    with pytest.raises(OSError):
        asyncio.run(direct())

    with tunnel_session(server.settings(env_path(server, "app.env"))) as session:
        port = session.local_port
        assert port != 5433 and port in listening_ports()
        result = tunnel_backup(session, tmp_path)
        stats = session.forward.stats()
    assert result.total_rows == 550
    assert stats.connections >= 2  # the leader and the snapshot worker(s)
    assert stats.bytes_from_server > 0  # every byte of the backup crossed the forward
    assert session.forward.closed
    assert port not in listening_ports()
    assert tunnel_threads() == []
    assert read_manifest(Path(result.path))["database"] == "app"
    assert (Path(result.path).stat().st_mode & 0o777) == 0o600


# ---- (1) round trip through the tunnel equals the source -------------------------------------


def test_backup_then_restore_through_the_tunnel_gives_back_the_source(
    server: TunnelServer, tmp_path: Path
) -> None:
    """The sharp fixture (every kind of object) → tunnel backup → tunnel restore into an empty
    database on the same server: the same data, table by table."""
    src = server.pg.socket_url("src")
    res = run_cli("tunnel", "backup", *server.cli_args(env_path(server, "src.env")),
                  "--backup-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    archive = Path(res.stdout.strip().splitlines()[-1])
    assert archive.parent == tmp_path and archive.is_file()
    assert "(SSH tunnel)" in res.stderr and "alembic" in res.stderr
    assert_no_secret(server, res.stdout, res.stderr)

    res = run_cli("tunnel", "restore", str(archive),
                  *server.cli_args(env_path(server, "dst.env")), "--backup-dir", str(tmp_path),
                  "--yes")
    assert res.returncode == 0, res.stderr
    assert data_digest(server.pg.socket_url("dst")) == data_digest(src)
    # dst had no tables: nothing to save, and the output says so
    assert not list((tmp_path / "safety").glob("safety-dst-*.mmops"))
    assert "none (the database had no tables)" in res.stdout
    assert "(mode create)" in res.stdout  # auto into an empty database: the agent's rule too
    assert_no_secret(server, res.stdout, res.stderr)


def test_restore_replaces_a_changed_database_after_a_safety_backup(
    server: TunnelServer, tmp_path: Path
) -> None:
    app = server.pg.socket_url("app")
    args = server.cli_args(env_path(server, "app.env"))
    before = data_digest(app)
    res = run_cli("tunnel", "backup", *args, "--backup-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    archive = Path(res.stdout.strip().splitlines()[-1])

    server.pg.psql("DELETE FROM notes WHERE id > 10; CREATE TABLE extra (x int);"
                   "INSERT INTO extra VALUES (1)", "app")
    changed = data_digest(app)
    assert changed != before

    refused = run_cli("tunnel", "restore", str(archive), *args, "--backup-dir", str(tmp_path))
    assert refused.returncode == 8, refused.stderr
    assert "--yes" in refused.stderr
    assert data_digest(app) == changed  # nothing happened without the typed confirmation

    res = run_cli("tunnel", "restore", str(archive), *args, "--backup-dir", str(tmp_path),
                  "--yes")
    assert res.returncode == 0, res.stderr
    assert "(replace)" in res.stdout
    assert data_digest(app) == before
    safety = list((tmp_path / "safety").glob("safety-app-*.mmops"))
    assert len(safety) == 1
    # the safety backup holds the live state from just before the restore
    assert "extra" in {t["name"] for t in read_manifest(safety[0])["tables"]}
    assert_no_secret(server, res.stdout, res.stderr)


# ---- (5) --tables / TABLES= through the tunnel, via make ----------------------------------


def _make(target: str, **variables: str) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    argv = ["make", "--no-print-directory", "-o", str(venv / ".installed"), f"VENV={venv}",
            target, *(f"{k}={v}" for k, v in variables.items())]
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "HOST", "TABLES", "BACKUP", "YES", "MAKEFLAGS"}}
    return subprocess.run(argv, cwd=Path(__file__).parents[2], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=120)


def test_make_targets_back_up_and_restore_selected_tables(
    server: TunnelServer, tmp_path: Path
) -> None:
    common = {"HOST": server.sshd.alias, "SSH_CONFIG": str(server.sshd.ssh_config),
              "ENV_FILE": str(env_path(server, "app.env")), "BACKUP_DIR": str(tmp_path)}
    res = _make("db-backup-ssh", TABLES="notes", **common)
    assert res.returncode == 0, res.stderr
    archive = next(tmp_path.glob("app-*.mmops"))
    assert [t["name"] for t in read_manifest(archive)["tables"]] == ["notes"]

    server.pg.psql("DELETE FROM notes WHERE id > 100; UPDATE users SET name = 'kept'", "app")
    res = _make("db-restore-ssh", BACKUP=str(archive), TABLES="notes", YES="1", **common)
    assert res.returncode == 0, res.stderr
    assert "(data-only)" in res.stdout
    counts = server.pg.psql("SELECT (SELECT count(*) FROM notes) || ' ' || "
                            "(SELECT count(DISTINCT name) FROM users)", "app").strip()
    assert counts == "500 1"  # notes are back; users (not selected) were left alone
    assert_no_secret(server, res.stdout, res.stderr)


# ---- (3) cleanup after success, failure and interruption -----------------------------------


def test_wrong_database_password_fails_clearly_and_leaves_nothing(
    server: TunnelServer, tmp_path: Path
) -> None:
    bad = env_path(server, "bad.env")
    res = run_cli("tunnel", "backup", *server.cli_args(bad), "--backup-dir", str(tmp_path))
    assert res.returncode == AuthenticationError.exit_code, res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("error: PostgreSQL at 127.0.0.1:")  # the DB host as the server sees it
    assert "rejected the password" in err and "through the SSH tunnel" in err
    assert "Traceback" not in res.stderr
    assert "not-the-password" not in res.stdout + res.stderr
    assert_no_secret(server, res.stdout, res.stderr)
    assert files_in(tmp_path) == []

    with pytest.raises(AuthenticationError), \
            tunnel_session(server.settings(bad)) as session:
        port = session.local_port
        tunnel_backup(session, tmp_path)
    assert session.forward.closed and port not in listening_ports()
    assert tunnel_threads() == []
    assert files_in(tmp_path) == []


def test_interruption_mid_copy_closes_the_forward_and_removes_the_partial_file(
    server: TunnelServer, tmp_path: Path
) -> None:
    def progress(p: Progress) -> None:
        if p.phase == "data" and p.done > 1_000_000:
            assert any(n.startswith(".") for n in files_in(tmp_path))  # the partial file exists
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), \
            tunnel_session(server.settings(env_path(server, "big.env"))) as session:
        port = session.local_port
        tunnel_backup(session, tmp_path, progress=progress)
    assert session.forward.closed and port not in listening_ports()
    assert tunnel_threads() == []
    assert files_in(tmp_path) == []


def _read_until(
    proc: subprocess.Popen[str], predicate: Callable[[str], bool], timeout: float
) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if not ready:
            continue
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if predicate(line):
            return lines
    raise AssertionError("expected output did not come: " + "".join(lines[-5:]))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_a_running_cli_backup_leaves_no_port_and_no_partial_file(
    server: TunnelServer, tmp_path: Path, sig: signal.Signals
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "HOST"}}
    proc = subprocess.Popen(
        [str(MMOPS), "tunnel", "backup", *server.cli_args(env_path(server, "big.env")),
         "--backup-dir", str(tmp_path), "--progress-json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env,
    )
    try:
        lines = _read_until(proc, lambda line: line.startswith("tunnel: "), 30)
        port = int(lines[-1].split()[1].split(":")[1])
        assert port in listening_ports()

        def copying(line: str) -> bool:
            if not line.startswith("{"):
                return False
            p = json.loads(line)["progress"]
            return bool(p["phase"] == "data" and p["done"] > 1_000_000)

        _read_until(proc, copying, 30)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    errors = [ln for ln in err.splitlines() if not ln.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith("error: "), err  # one sentence, no noise
    assert "Traceback" not in err and "Event loop is closed" not in err
    assert port not in listening_ports()
    assert files_in(tmp_path) == []


# ---- (4) the password is on no command line and in no output ---------------------------------


def test_password_appears_in_no_process_cmdline_and_no_output(
    server: TunnelServer, tmp_path: Path
) -> None:
    secret = server.pg.password.encode()
    seen: list[str] = []
    sampled = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal sampled
        while not stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        cmdline = fh.read()
                except OSError:
                    continue
                sampled += 1
                if secret in cmdline:
                    seen.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        res = run_cli("tunnel", "backup", *server.cli_args(env_path(server, "big.env")),
                      "--backup-dir", str(tmp_path), "--json")
    finally:
        stop.set()
        sampler.join(10)
    assert res.returncode == 0, res.stderr
    assert sampled > 100
    assert seen == []
    assert_no_secret(server, res.stdout, res.stderr)
    summary = json.loads(res.stdout)
    assert summary["total_rows"] == 160000
    assert server.pg.password not in json.dumps(read_manifest(Path(summary["path"])))


# ---- the SSH connection dies mid-backup ----------------------------------------------------------


def _session_processes(server: TunnelServer) -> list[int]:
    """The per-connection sshd processes: descendants of the sshd this test module started."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [server.sshd.pid]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        found += children
        frontier += children
    return found


def test_lost_ssh_connection_mid_backup_fails_clearly_and_leaves_nothing(
    server: TunnelServer, tmp_path: Path
) -> None:
    killed: list[int] = []

    def progress(p: Progress) -> None:
        if p.phase == "data" and p.done > 1_000_000 and not killed:
            for pid in _session_processes(server):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    with pytest.raises(RemoteError, match="SSH connection .* was lost"), \
            tunnel_session(server.settings(env_path(server, "big.env"))) as session:
        port = session.local_port
        tunnel_backup(session, tmp_path, progress=progress)
    assert killed
    assert session.forward.closed and port not in listening_ports()
    assert tunnel_threads() == []
    assert files_in(tmp_path) == []


def test_failing_restore_leaves_the_database_unchanged_and_keeps_the_safety_backup(
    server: TunnelServer, tmp_path: Path
) -> None:
    app = server.pg.socket_url("app")
    args = server.cli_args(env_path(server, "app.env"))
    res = run_cli("tunnel", "backup", *args, "--backup-dir", str(tmp_path), "--tables", "notes")
    assert res.returncode == 0, res.stderr
    archive = Path(res.stdout.strip().splitlines()[-1])
    server.pg.psql("UPDATE notes SET body = 'changed' WHERE id <= 5", "app")
    before = data_digest(app)

    # dependencies are reported before anything happens: users is referenced by notes
    full = run_cli("tunnel", "backup", *args, "--backup-dir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    refused = run_cli("tunnel", "restore", full.stdout.strip().splitlines()[-1], *args,
                      "--backup-dir", str(tmp_path), "--tables", "users", "--yes")
    assert refused.returncode == 8, refused.stderr
    # the plan names the table that has to come along, before any transfer
    assert "public.notes" in refused.stderr and "--with-dependents" in refused.stderr
    assert not (tmp_path / "safety").exists()

    async def hold_lock_and_restore() -> subprocess.CompletedProcess[str]:
        # An open transaction that read `notes` holds a lock the restore must wait for.
        conn = await asyncpg.connect(**app.connect_kwargs())
        try:
            async with conn.transaction():
                await conn.fetchval("SELECT count(*) FROM notes")
                return await asyncio.to_thread(
                    run_cli, "tunnel", "restore", str(archive), *args, "--backup-dir",
                    str(tmp_path), "--tables", "notes", "--yes", "--lock-timeout", "1")
        finally:
            await conn.close()

    res = asyncio.run(hold_lock_and_restore())
    assert res.returncode == 9, res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert "nothing was changed" in err and "The safety backup is " in err
    safety = Path(err.rsplit("The safety backup is ", 1)[1].rstrip("."))
    assert safety.is_file() and safety.parent == tmp_path / "safety"
    assert data_digest(app) == before


def test_a_plain_sql_dump_restores_through_the_tunnel_into_an_empty_database(
    server: TunnelServer, tmp_path: Path
) -> None:
    """`db-restore-ssh BACKUP=dump.sql`: a real pg_dump file runs through the tunnel in one
    transaction into the server's (empty) database (no safety backup: nothing to save)."""
    server.pg.psql("CREATE DATABASE sqlin")
    env = server.write_env_file("sqlin.env", "sqlin")
    dump = tmp_path / "app.sql"
    pg = server.pg
    res = subprocess.run(
        [str(pg.bindir / "pg_dump"), "--no-owner", "--no-privileges", "-h", str(pg.socket_dir),
         "-p", str(pg.port), "-U", pg.superuser, "-d", "app", "-f", str(dump)],
        capture_output=True, text=True, env={**os.environ, "PGPASSWORD": pg.password},
    )
    assert res.returncode == 0, res.stderr
    res = run_cli("tunnel", "restore", str(dump), *server.cli_args(env),
                  "--backup-dir", str(tmp_path), "--yes")
    assert res.returncode == 0, res.stderr
    assert data_digest(pg.socket_url("sqlin")) == data_digest(pg.socket_url("app"))
    assert "none (the database had no tables)" in res.stdout  # nothing to save first
    assert_no_secret(server, res.stdout, res.stderr)
