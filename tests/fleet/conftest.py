"""A fleet of real hosts: three OpenSSH sshd servers on 127.0.0.1, each with its own port, host
key, login user (so its own home, OPS_DIR and env file) and ssh_config alias, all in one
ssh_config file as an operator's would be; plus ``down``, an alias whose port nobody listens on.

Why separate sshd processes and users on loopback rather than network namespaces: what a fleet
run must prove — separate SSH connections, host keys, agents and env files, failures that stay
on one host, bounded parallelism — is all there, and every host reaches the one sandbox
PostgreSQL on 127.0.0.1 the way an app server reaches its own database (in a namespace it would
need a veth route to the database, which the tunnel tests already cover). The databases behind
the hosts are the sandbox's (tests/transport's ``remote`` fixture).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.sandbox.postgres import free_port
from ops.sandbox.sshd import SshServer, unique_login_user
from tests.remote_sandbox import Remote

ROOT = Path(__file__).resolve().parents[2]
MMOPS = str(Path(sys.executable).parent / "mmops")
NAMES = ("alpha", "bravo", "charlie")
ENV_REL = "app/markdown-manager.env"
OTHER_ENV_REL = "app/postgres-db.env"  # the same server's `postgres` database (no app tables)


@dataclass
class FleetHosts:
    remote: Remote
    servers: dict[str, SshServer]
    ssh_config: Path
    base: Path
    env: dict[str, str]

    def home(self, name: str) -> Path:
        return Path(pwd.getpwnam(self.servers[name].user).pw_dir)

    def ops_dir(self, name: str) -> Path:
        return self.home(name) / "markdown-manager-ops"

    def env_file(self, name: str) -> str:
        return str(self.home(name) / ENV_REL)

    def other_env_file(self, name: str) -> str:
        return str(self.home(name) / OTHER_ENV_REL)

    def inventory(self, body: str, name: str = "inventory.toml") -> Path:
        path = self.base / name
        path.write_text(f'[defaults]\nssh_config = "{self.ssh_config}"\n\n{body}')
        return path

    def standard_inventory(self) -> Path:
        """alpha, bravo: good; charlie: a wrong ENV_FILE; down: nothing listens on its port."""
        return self.inventory(
            f'[hosts.alpha]\nhost = "fleet-alpha"\nenv_file = "{self.env_file("alpha")}"\n\n'
            f'[hosts.bravo]\nhost = "fleet-bravo"\nenv_file = "{self.env_file("bravo")}"\n\n'
            '[hosts.charlie]\nhost = "fleet-charlie"\n'
            'env_file = "/etc/no-such-dir/markdown-manager.env"\n\n'
            '[hosts.down]\nhost = "fleet-down"\n')

    def run(self, *args: str, timeout: float = 600, **extra: str
            ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, **extra)
        res = subprocess.run([MMOPS, "fleet", *args], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=str(self.base))
        assert self.remote.password not in res.stdout + res.stderr
        return res

    def make(self, target: str, timeout: float = 600, **extra: str
             ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, **extra)
        res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), target], env=env,
                             capture_output=True, text=True, timeout=timeout)
        assert self.remote.password not in res.stdout + res.stderr
        return res


def local_wheelhouse(base: Path) -> Path:
    """The locked dependencies as wheels in ``base/wheelhouse`` (world-readable), for the hosts'
    pip to install from instead of the index: three first-time installs, each downloading every
    dependency again, were most of this package's time. What the fleet tests prove is the
    orchestration; the index install itself is tested in tests/transport (setup, offline)."""
    house = base / "wheelhouse"
    house.mkdir(mode=0o755)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet",
                    "--disable-pip-version-check", "--only-binary=:all:", "--dest", str(house),
                    "-r", str(ROOT / "ops" / "requirements.lock")], check=True, timeout=900)
    for wheel in house.iterdir():
        wheel.chmod(0o644)
    return house


@pytest.fixture(scope="session")
def fleet_hosts(remote: Remote) -> Iterator[FleetHosts]:
    base = Path(tempfile.mkdtemp(prefix="mmops-test-fleet-"))
    os.chmod(base, 0o755)
    house = local_wheelhouse(base)
    servers: dict[str, SshServer] = {}
    env_text = Path(remote.state.env_file).read_text()
    try:
        for name in NAMES:
            server = SshServer(state_dir=base / f"sshd-{name}", alias=f"fleet-{name}",
                               login_user=unique_login_user("mmops-f"))
            server.start()
            servers[name] = server
            server.write_user_file(".config/pip/pip.conf",
                                   f"[global]\nno-index = true\nfind-links = {house}\n")
            server.write_user_file(ENV_REL, env_text)
            server.write_user_file(OTHER_ENV_REL, env_text.replace(
                f"/{remote.state.database}\n", "/postgres\n"))
        down = ("Host fleet-down\n    HostName 127.0.0.1\n"
                f"    Port {free_port()}\n    User nobody\n    BatchMode yes\n"
                "    ConnectTimeout 5\n")
        ssh_config = base / "ssh_config"
        ssh_config.write_text("".join(s.ssh_config.read_text() + "\n"
                                      for s in servers.values()) + down)
        os.chmod(ssh_config, 0o600)
        env = {k: v for k, v in remote.env.items()
               if k not in ("HOST", "SSH_CONFIG", "ENV_FILE", "REPO", "MMOPS_REPO", "BACKUP_DIR",
                            "HOSTS", "PARALLEL", "KEEP", "ENCRYPT_TO")}
        yield FleetHosts(remote, servers, ssh_config, base, env)
    finally:
        for server in servers.values():
            server.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def fleet_setup(fleet_hosts: FleetHosts) -> subprocess.CompletedProcess[str]:
    """`make setup-remote-ops HOSTS=…` once for the session (the table is checked by a test)."""
    return fleet_hosts.make("setup-remote-ops", HOSTS=str(fleet_hosts.standard_inventory()),
                            PARALLEL="3", FLEET_LOG_DIR=str(fleet_hosts.base / "setup-logs"))
