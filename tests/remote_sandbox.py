"""One sandbox (real PostgreSQL + real sshd + app data) and one provisioned agent per session.

The fixtures are registered once, in tests/conftest.py, and shared by tests/transport,
tests/schedule and tests/fleet: a fixture imported into several conftest files is a separate
fixture in each (three sandboxes and two agent installs per run before).

Commands run the way users run them: ``make <target>`` with Make variables in the environment,
or the ``mmops`` console script. Every helper asserts the database password never appears in
what a command printed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops.dburl import DbUrl, read_env_file
from ops.sandbox.manager import SandboxState
from ops.sandbox.sshd import SSHD, unique_login_user

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MMOPS = str(BIN / "mmops")


@dataclass
class Remote:
    state: SandboxState
    env: dict[str, str]
    password: str
    url: DbUrl
    home: Path
    work: Path
    outputs: list[str] = field(default_factory=list)

    @property
    def ops_dir(self) -> Path:
        return self.home / "markdown-manager-ops"

    def cmd_env(self, **extra: str) -> dict[str, str]:
        env = dict(self.env)
        env.update(extra)
        return env

    def _check(self, res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        text = res.stdout + res.stderr
        self.outputs.append(text)
        assert self.password not in text, "the database password leaked into the output"
        return res

    def make(
        self, target: str, timeout: float = 300, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT), target],
            env=self.cmd_env(**extra), capture_output=True, text=True, timeout=timeout,
        )
        return self._check(res)

    def mmops(
        self, *args: str, timeout: float = 300, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [MMOPS, "remote", *args], env=self.cmd_env(**extra), capture_output=True,
            text=True, timeout=timeout, cwd=str(self.work),
        )
        return self._check(res)

    def write_server_file(self, rel: str, text: str, mode: int = 0o600) -> Path:
        """A file in the login user's home, owned by it (as the server's admin would)."""
        pw = pwd.getpwnam(self.state.login_user)
        path = self.home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chown(path.parent, pw.pw_uid, pw.pw_gid)
        path.write_text(text)
        os.chmod(path, mode)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    def leftover_tmp(self) -> list[Path]:
        tmp = self.ops_dir / "tmp"
        return sorted(tmp.iterdir()) if tmp.is_dir() else []


def wait_until(pred: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def remote() -> Iterator[Remote]:
    """The sandbox started through the CLI into a private state dir, with its own login user."""
    if os.geteuid() != 0:
        pytest.skip("the remote suite reads the server side directly; run it as root (CI does)")
    from tests.conftest import require

    require(SSHD.exists(), f"OpenSSH server ({SSHD})")
    base = Path(tempfile.mkdtemp(prefix="mmops-test-remote-"))
    os.chmod(base, 0o755)
    env = dict(os.environ)
    for var in ("HOST", "REMOTE_USER_HOST", "SSH_CONFIG", "ENV_FILE", "PROD_ENV_FILE", "OPS_DIR",
                "BACKUP", "YES", "TABLES", "ACCEPT_NEW_HOST_KEY", "OFFLINE", "REMOTE_PYTHON"):
        env.pop(var, None)
    env["MMOPS_SANDBOX_DIR"] = str(base / "sandbox")
    env["MMOPS_SANDBOX_USER"] = unique_login_user("mmops-r")
    res = subprocess.run([MMOPS, "sandbox", "start"], env=env, capture_output=True, text=True,
                         timeout=300)
    try:
        assert res.returncode == 0, res.stderr
        state = SandboxState.from_json((base / "sandbox" / "state.json").read_text())
        url = read_env_file(Path(state.env_file))
        assert url.password
        env.update(state.env_vars())
        work = base / "work"
        work.mkdir()
        yield Remote(state, env, url.password, url, Path(pwd.getpwnam(state.login_user).pw_dir),
                     work)
    finally:
        subprocess.run([MMOPS, "sandbox", "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def provisioned(remote: Remote) -> Remote:
    """`make setup-remote-ops` once for the session."""
    res = remote.make("setup-remote-ops")
    assert res.returncode == 0, res.stdout + res.stderr
    return remote


@pytest.fixture
def backup_dir(provisioned: Remote, tmp_path: Path) -> Path:
    return tmp_path / "backups"
