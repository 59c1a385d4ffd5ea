"""What a remote command needs to know besides the connection: OPS_DIR, ENV_FILE, python."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .connection import RemoteTarget

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
