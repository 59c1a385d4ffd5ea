"""What the operator reads when something goes wrong, through the real `mmops` console script:
SSH failures in words (never `[Errno …]`), agent authentication errors that name the server's
env file, `mmops check` usage errors as UNKNOWN (3), a missing backup file refused before the
tunnel opens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.remote_sandbox import Remote

MMOPS = str(Path(sys.executable).parent / "mmops")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMOPS, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens there once closed


@pytest.mark.parametrize("command", [["remote", "status"], ["tunnel", "backup"],
                                     ["schedule", "status"]])
def test_ssh_connection_errors_are_words_not_errno(tmp_path: Path, closed_port: int,
                                                   command: list[str]) -> None:
    res = _run(*command, "--host", f"nobody@127.0.0.1:{closed_port}", cwd=tmp_path)
    said = f"Cannot connect to nobody@127.0.0.1:{closed_port} by SSH: Connection refused."
    assert "Errno" not in res.stdout + res.stderr and "Traceback" not in res.stderr
    if command[0] == "schedule":
        # A Nagios-style status: UNKNOWN (3) when it cannot be read, said on its status line.
        assert res.returncode == 3, res.stdout + res.stderr
        assert said in res.stdout
        return
    assert res.returncode == 10, res.stderr
    assert res.stderr.startswith(f"error: {said}")


def test_tunnel_restore_of_a_missing_file_is_refused_before_the_tunnel(tmp_path: Path,
                                                                       closed_port: int) -> None:
    res = _run("tunnel", "restore", "nightly-typo.mmops", "--host",
               f"nobody@127.0.0.1:{closed_port}", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Backup file nightly-typo.mmops does not exist" in res.stderr
    assert "Cannot connect" not in res.stderr  # no SSH connection was attempted


@pytest.mark.parametrize("argv", [[], ["--repo", ".", "--bogus"],
                                  ["--repo", ".", "--min-count", "many"]])
def test_check_usage_errors_are_unknown_never_critical(tmp_path: Path, argv: list[str]) -> None:
    res = _run("check", *argv, cwd=tmp_path)
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stdout.startswith("BACKUP UNKNOWN - usage: ")
    as_json = _run("check", *argv, "--json", cwd=tmp_path)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["status_name"] == "UNKNOWN"


@pytest.mark.sshd
@pytest.mark.postgres
def test_agent_authentication_error_names_the_servers_env_file(provisioned: Remote) -> None:
    remote = provisioned
    wrong = remote.url
    env = remote.write_server_file(
        "wrong-password.env",
        f"DATABASE_URL=postgresql://{wrong.username}:not-the-password@{wrong.host}:"
        f"{wrong.port}/{wrong.database}\n")
    res = remote.mmops("status", ENV_FILE=str(env))
    assert res.returncode == 5, res.stdout + res.stderr
    assert f"The DATABASE_URL in {env} on " in res.stderr
    assert "not-the-password" not in res.stdout + res.stderr


@pytest.mark.parametrize("group", ["tunnel", "remote"])
def test_a_missing_backup_file_without_host_starts_no_sandbox(tmp_path: Path, group: str
                                                              ) -> None:
    state = tmp_path / "sandbox"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MMOPS_SANDBOX_DIR": str(state),
           "MMOPS_SANDBOX_USER": "mmops-test-nosb"}
    try:
        res = subprocess.run([MMOPS, group, "restore", "nightly-typo.mmops"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stderr
        assert "Backup file nightly-typo.mmops does not exist" in res.stderr
        assert "sandbox" not in res.stderr and not state.exists()
    finally:
        subprocess.run([MMOPS, "sandbox", "stop"], env=env, capture_output=True, timeout=120)


@pytest.mark.sshd
@pytest.mark.postgres
def test_tunnel_authentication_error_names_the_servers_env_file(remote: Remote,
                                                                tmp_path: Path) -> None:
    wrong = remote.url
    env_file = remote.write_server_file(
        "tunnel-wrong-password.env",
        f"DATABASE_URL=postgresql://{wrong.username}:not-the-password@{wrong.host}:"
        f"{wrong.port}/{wrong.database}\n")
    res = subprocess.run([MMOPS, "tunnel", "backup"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path,
                         env=remote.cmd_env(ENV_FILE=str(env_file),
                                            BACKUP_DIR=str(tmp_path / "b")))
    assert res.returncode == 5, res.stdout + res.stderr
    assert f"The DATABASE_URL in {env_file} on " in res.stderr
    assert "not-the-password" not in res.stdout + res.stderr
