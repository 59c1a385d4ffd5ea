"""Resolve where remote commands go: an explicit HOST, or (none given) the local sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .connection import RemoteTarget
from .settings import DEFAULT_ENV_FILE, DEFAULT_OPS_DIR, RemoteSettings


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
    from ..sandbox import manager

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
