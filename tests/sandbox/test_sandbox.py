"""`mmops sandbox start|status|env|stop` through the real CLI: PostgreSQL + sshd + app data."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.dburl import DbUrl
from ops.sandbox.app import head_revision
from ops.sandbox.manager import SandboxState, database_url
from ops.sandbox.sshd import SSHD, pid_alive, unique_login_user
from tests.conftest import require

pytestmark = [pytest.mark.postgres, pytest.mark.sshd]

# The console script installed beside this interpreter: the real entry point users run.
MMOPS = [str(Path(sys.executable).parent / "mmops")]
Sandbox = tuple[dict[str, str], SandboxState, str]


@pytest.fixture(scope="module", autouse=True)
def _need_sshd() -> None:
    require(SSHD.exists(), f"OpenSSH server ({SSHD})")


def _env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MMOPS_SANDBOX_DIR"] = str(state_dir)
    env["MMOPS_SANDBOX_USER"] = unique_login_user("mmops-s")
    return env


def mmops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MMOPS, "sandbox", *args], env=env, capture_output=True, text=True,
                          timeout=180, cwd="/")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    state_dir = Path(tempfile.mkdtemp(prefix="mmops-test-sandbox-"))
    env = _env(state_dir)
    res = mmops(env, "start")
    try:
        assert res.returncode == 0, res.stderr
        state = SandboxState.from_json((state_dir / "state.json").read_text())
        yield env, state, res.stdout + res.stderr
    finally:
        mmops(env, "stop")
        shutil.rmtree(state_dir, ignore_errors=True)


async def _query(url: DbUrl, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_start_builds_migrated_seeded_app_database(sandbox: Sandbox) -> None:
    _env_, state, _out = sandbox
    url = database_url(state)
    assert (url.username, url.host, url.port, url.database) == (
        "markdown", "127.0.0.1", state.postgres_port, "markdown_manager")
    rows = asyncio.run(_query(url, "SELECT version_num FROM alembic_version"))
    assert rows[0]["version_num"] == head_revision() == state.alembic_revision
    counts = asyncio.run(_query(url, "SELECT (SELECT count(*) FROM users) AS u, "
                                     "(SELECT count(*) FROM documents) AS d, "
                                     "(SELECT count(*) FROM custom_dictionaries) AS c, "
                                     "(SELECT count(*) FROM document_recovery) AS r"))[0]
    assert (counts["u"], counts["d"]) == (20, 200) and counts["c"] > 0 and counts["r"] > 0
    owner = asyncio.run(_query(url, "SELECT tableowner FROM pg_tables WHERE tablename='documents'"))
    assert owner[0]["tableowner"] == "markdown"


def test_env_file_is_private_to_login_user(sandbox: Sandbox) -> None:
    _env_, state, _out = sandbox
    env_file = Path(state.env_file)
    st = env_file.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert pwd.getpwuid(st.st_uid).pw_name == state.login_user
    assert env_file.read_text().count("DATABASE_URL=postgresql+asyncpg://markdown:") == 1


def test_login_over_sandbox_sshd_with_its_alias(sandbox: Sandbox) -> None:
    _env_, state, _out = sandbox
    res = subprocess.run(["ssh", "-F", state.ssh_config, state.ssh_alias, "id", "-un"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == state.login_user
    # The agent, logged in as that user, can read its env file.
    res = subprocess.run(["ssh", "-F", state.ssh_config, state.ssh_alias, "test", "-r",
                          state.env_file], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0


def test_no_password_in_state_status_or_output(sandbox: Sandbox) -> None:
    env, state, out = sandbox
    password = database_url(state).password
    assert password and len(password) >= 32
    status = mmops(env, "status")
    status_json = mmops(env, "status", "--json")
    env_out = mmops(env, "env")
    assert status.returncode == 0 and status_json.returncode == 0
    state_text = (Path(state.state_dir) / "state.json").read_text()
    for text in (out, status.stdout, status.stderr, status_json.stdout, env_out.stdout, state_text):
        assert password not in text
    assert "markdown:***@127.0.0.1" in status.stdout
    assert json.loads(status_json.stdout)["running"] is True
    assert stat.S_IMODE((Path(state.state_dir) / "state.json").stat().st_mode) == 0o600
    assert f"HOST={state.ssh_alias}" in env_out.stdout


def test_start_again_reports_already_running(sandbox: Sandbox) -> None:
    env, state, _out = sandbox
    res = mmops(env, "start", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["already_running"] is True
    assert data["state"]["postgres_pid"] == state.postgres_pid


def test_stop_ends_processes_and_removes_state_dir() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="mmops-test-sandbox-"))
    env = _env(state_dir)
    res = mmops(env, "start", "--users", "3", "--documents", "5")
    assert res.returncode == 0, res.stderr
    state = SandboxState.from_json((state_dir / "state.json").read_text())
    assert pid_alive(state.postgres_pid) and pid_alive(state.sshd_pid)
    res = mmops(env, "stop")
    assert res.returncode == 0, res.stderr
    assert not pid_alive(state.postgres_pid)
    assert not pid_alive(state.sshd_pid)
    assert not state_dir.exists()
    assert not Path(state.env_file).exists()
    if state.created_user:
        with pytest.raises(KeyError):
            pwd.getpwnam(state.login_user)
    status = mmops(env, "status")
    assert status.returncode == 1 and "not running" in status.stdout


def test_refuses_a_foreign_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    res = mmops(_env(tmp_path), "start")
    assert res.returncode == 3
    assert "not a sandbox state dir" in res.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


REPO = Path(__file__).resolve().parents[2]


def test_make_sandbox_and_sandbox_stop(tmp_path: Path) -> None:
    require(shutil.which("make") is not None, "make")
    state_dir = Path(tempfile.mkdtemp(prefix="mmops-test-sandbox-"))
    env = _env(state_dir)
    res = subprocess.run(["make", "-s", "-C", str(REPO), "sandbox"], env=env, capture_output=True,
                         text=True, timeout=300)
    try:
        assert res.returncode == 0, res.stderr
        assert "sandbox: running" in res.stdout
        state = SandboxState.from_json((state_dir / "state.json").read_text())
        ssh = subprocess.run(["ssh", "-F", state.ssh_config, state.ssh_alias, "true"],
                             capture_output=True, text=True, timeout=60)
        assert ssh.returncode == 0, ssh.stderr
    finally:
        res = subprocess.run(["make", "-s", "-C", str(REPO), "sandbox-stop"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "sandbox stopped" in res.stdout
    assert not state_dir.exists()
