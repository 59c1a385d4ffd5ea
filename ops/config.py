"""Where remote commands go and what they need besides the connection: HOST (or the sandbox),
ssh_config, ENV_FILE, OPS_DIR, the server's python. One frozen value, resolved once per command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .ssh.connection import RemoteTarget

DEFAULT_ENV_FILE = "/etc/markdown-manager.env"
DEFAULT_OPS_DIR = "~/markdown-manager-ops"


@dataclass(frozen=True)
class RemoteSettings:
    target: RemoteTarget
    env_file: str = DEFAULT_ENV_FILE
    ops_dir: str = DEFAULT_OPS_DIR  # made absolute by ``with_ops_dir`` after the probe
    python: str = "python3"
    sandbox: bool = False

    @property
    def host_label(self) -> str:
        return self.target.host

    def with_ops_dir(self, ops_dir: str) -> RemoteSettings:
        return replace(self, ops_dir=ops_dir)


def resolve_settings(
    *,
    host: str | None,
    ssh_config: str | None,
    env_file: str | None,
    ops_dir: str | None,
    python: str | None,
    accept_new_host_key: bool,
    notice: Callable[[str], None] = lambda _m: None,
) -> RemoteSettings:
    """HOST given: use it with ssh_config/ENV_FILE. No HOST: the sandbox (started if needed)."""
    if host:
        target = RemoteTarget(
            host, Path(ssh_config).expanduser() if ssh_config else None, accept_new_host_key
        )
        return RemoteSettings(
            target, env_file or DEFAULT_ENV_FILE, ops_dir or DEFAULT_OPS_DIR, python or "python3"
        )
    from .sandbox import manager

    status = manager.status()
    if not status.running:
        notice("No HOST given: starting the local sandbox (make sandbox) ...")
        status = manager.start()
    state = status.state
    assert state is not None
    notice(f"No HOST given: using the sandbox ({state.ssh_alias}, database {state.database}).")
    target = RemoteTarget(state.ssh_alias, Path(state.ssh_config), accept_new_host_key)
    return RemoteSettings(
        target,
        env_file or state.env_file,
        ops_dir or DEFAULT_OPS_DIR,
        python or "python3",
        sandbox=True,
    )
