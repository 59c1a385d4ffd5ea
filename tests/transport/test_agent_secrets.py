"""The agent's protocol survives any password: secrets are kept out of messages when they are
built, never substring-replaced afterwards (real sshd, real PostgreSQL, the real CLI)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from ops.archive import read_manifest
from tests.remote_sandbox import MMOPS, Remote


async def _set_password(remote: Remote, current: str, new: str) -> None:
    kwargs = remote.url.connect_kwargs()
    kwargs["password"] = current
    conn = await asyncpg.connect(**kwargs)
    try:
        # ALTER ROLE takes no bind parameters: quote the literal the way PostgreSQL does.
        literal = new.replace("'", "''")
        await conn.execute(f"ALTER ROLE CURRENT_USER PASSWORD '{literal}'")
    finally:
        await conn.close()


@pytest.fixture
def password_env(provisioned: Remote) -> Iterator[object]:
    """``use(password)`` sets the role's password and writes an env file holding it."""
    remote = provisioned
    state = {"current": remote.password}

    def use(password: str) -> Path:
        asyncio.run(_set_password(remote, state["current"], password))
        state["current"] = password
        u = remote.url
        text = (f"DATABASE_URL=postgresql://{u.username}:{quote(password, safe='')}@"
                f"{u.host}:{u.port}/{u.database}\n")
        return remote.write_server_file("pw-test.env", text)

    yield use
    asyncio.run(_set_password(remote, state["current"], remote.password))


def _run(remote: Remote, *args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MMOPS, "remote", *args], env=remote.cmd_env(ENV_FILE=str(env_file)),
        capture_output=True, text=True, timeout=300, cwd=str(remote.work),
    )


def test_backups_and_restores_work_whatever_the_password(
    provisioned: Remote, password_env: object, tmp_path: Path
) -> None:
    remote = provisioned
    db, user = remote.url.database, remote.url.username or ""
    for password in ("1", "a", db, user, "null", "true", "0"):
        env_file = password_env(password)  # type: ignore[operator]
        out = tmp_path / f"pw-{len(password)}-{password.isdigit()}-{password[:2]}"
        res = _run(remote, "backup", "--backup-dir", str(out), "--json", env_file=env_file)
        assert res.returncode == 0, (password, res.stdout, res.stderr)
        summary = json.loads(res.stdout)  # the protocol's JSON arrived intact
        path = Path(summary["path"])
        assert path.is_file() and path.parent == out and path.name.startswith(db + "-")
        assert "***" not in res.stdout + res.stderr  # nothing was rewritten
        assert read_manifest(path)["database"] == db
        assert summary["size_bytes"] == path.stat().st_size
    # A restore with the password that equals the database's name (a common dev setup).
    env_file = password_env(db)  # type: ignore[operator]
    res = _run(remote, "restore", "latest", "--backup-dir", str(out), "--yes", env_file=env_file)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "***" not in res.stdout + res.stderr and "row counts checked" in res.stdout


def test_an_unencoded_password_in_the_servers_env_file_is_one_sentence_exit_3(
    provisioned: Remote
) -> None:
    remote = provisioned
    u = remote.url
    env_file = remote.write_server_file(
        "bad-url.env", f"DATABASE_URL=postgresql://{u.username}:Zq@Kv:w/Xr%#Jy?&=@{u.host}:"
                       f"{u.port}/{u.database}\n")
    res = _run(remote, "backup", "--backup-dir", "unused", env_file=env_file)
    assert res.returncode == 3, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "percent-encode" in lines[0].lower()
    assert "Traceback" not in res.stderr
    for fragment in ("Zq", "Kv", "Xr", "Jy"):
        assert fragment not in res.stdout + res.stderr
