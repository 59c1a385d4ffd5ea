"""Sandboxes belong to their checkout (state dir), and a sandbox's data is never wiped silently:
through the real `mmops sandbox` CLI, as root (the login user is a real account)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.sandbox.manager import SandboxState, database_url
from ops.sandbox.postgres import PostgresServer
from ops.sandbox.sshd import pid_alive

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.sshd,
    pytest.mark.skipif(os.geteuid() != 0, reason="sandbox login users are real accounts: root"),
]

MMOPS = str(Path(sys.executable).parent / "mmops")


def sandbox_cmd(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No MMOPS_SANDBOX_USER: the default login user is what is under test.
    env = {k: v for k, v in os.environ.items() if k not in ("MMOPS_SANDBOX_USER",)}
    env["MMOPS_SANDBOX_DIR"] = str(state_dir)
    return subprocess.run([MMOPS, "sandbox", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd="/")


def read_state(state_dir: Path) -> SandboxState:
    return SandboxState.from_json((state_dir / "state.json").read_text())


@pytest.fixture
def checkouts() -> Iterator[list[Path]]:
    """State dirs of sandboxes started by a test (each stopped and removed afterwards)."""
    dirs: list[Path] = []
    yield dirs
    for d in dirs:
        sandbox_cmd(d, "stop")
        shutil.rmtree(d.parents[1], ignore_errors=True)  # the checkout


def start(checkouts: list[Path]) -> tuple[Path, SandboxState]:
    state_dir = Path(tempfile.mkdtemp(prefix="mmops-test-checkout-")) / ".state" / "sandbox"
    checkouts.append(state_dir)
    res = sandbox_cmd(state_dir, "start", "--users", "2", "--documents", "3")
    assert res.returncode == 0, res.stderr
    return state_dir, read_state(state_dir)


def ssh_whoami(state: SandboxState) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", state.ssh_config, state.ssh_alias, "id", "-un"],
                          capture_output=True, text=True, timeout=60)


async def _sql(state: SandboxState, sql: str) -> object:
    conn = await asyncpg.connect(**database_url(state).connect_kwargs())
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def sql(state: SandboxState, query: str) -> object:
    return asyncio.run(_sql(state, query))


def postgres_of(state: SandboxState) -> PostgresServer:
    return PostgresServer(base_dir=Path(state.postgres_dir), bindir=Path(state.postgres_bindir),
                          port=state.postgres_port)


def test_two_checkouts_get_their_own_login_user_and_stopping_one_leaves_the_other(
    checkouts: list[Path],
) -> None:
    first_dir, first = start(checkouts)
    second_dir, second = start(checkouts)
    assert first.login_user != second.login_user
    assert first.env_file != second.env_file
    assert ssh_whoami(first).stdout.strip() == first.login_user
    assert ssh_whoami(second).stdout.strip() == second.login_user

    res = sandbox_cmd(second_dir, "stop")
    assert res.returncode == 0, res.stderr
    # The first checkout's account, SSH access and env file are untouched.
    assert pwd.getpwnam(first.login_user)
    who = ssh_whoami(first)
    assert who.returncode == 0 and who.stdout.strip() == first.login_user, who.stderr
    assert Path(first.env_file).is_file()
    assert sql(first, "SELECT count(*) FROM users") == 2
    with pytest.raises(KeyError):
        pwd.getpwnam(second.login_user)


def test_a_stopped_or_restarted_postgres_is_taken_back_with_its_data_never_recreated(
    checkouts: list[Path],
) -> None:
    state_dir, state = start(checkouts)
    sql(state, "CREATE TABLE keep_me AS SELECT 42 AS answer")

    postgres_of(state).stop()  # e.g. a reboot
    assert not pid_alive(state.postgres_pid)
    res = sandbox_cmd(state_dir, "start")
    assert res.returncode == 0, res.stderr
    assert "restarted PostgreSQL on its existing data" in res.stdout
    again = read_state(state_dir)
    assert again.postgres_dir == state.postgres_dir and again.created_at == state.created_at
    assert sql(again, "SELECT answer FROM keep_me") == 42

    server = postgres_of(again)  # restarted by someone else: a new postmaster pid
    server.stop()
    server.start()
    res = sandbox_cmd(state_dir, "start")
    assert res.returncode == 0, res.stderr
    assert "PostgreSQL had been restarted" in res.stdout
    assert sql(read_state(state_dir), "SELECT answer FROM keep_me") == 42


def test_a_postgres_that_cannot_start_again_is_one_sentence_and_its_data_stays(
    checkouts: list[Path],
) -> None:
    state_dir, state = start(checkouts)
    sql(state, "CREATE TABLE keep_me AS SELECT 42 AS answer")
    postgres_of(state).stop()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", state.postgres_port))  # its port is taken meanwhile
    squatter.listen(1)
    try:
        res = sandbox_cmd(state_dir, "start")
    finally:
        squatter.close()
    assert res.returncode == 3, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "did not start again" in errors[0] and "Its data is kept" in errors[0]
    assert "make sandbox-stop" in errors[0], errors[0]
    assert (Path(state.postgres_dir) / "data").is_dir()

    res = sandbox_cmd(state_dir, "start")  # the port is free again
    assert res.returncode == 0, res.stderr
    assert sql(read_state(state_dir), "SELECT answer FROM keep_me") == 42
