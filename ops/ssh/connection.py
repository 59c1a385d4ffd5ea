"""Open and close the one SSH connection a command uses (Fabric, strict host keys).

Host keys: known_hosts files from ssh_config (``UserKnownHostsFile``, ``GlobalKnownHostsFile``)
or the OpenSSH defaults are loaded, and an unknown key is refused (a ``RejectPolicy``) with a
message showing its SHA256 fingerprint, unless the operator accepted new keys explicitly
(``--accept-new-host-key``), which then appends the key to the user's known_hosts file, like
OpenSSH's ``StrictHostKeyChecking=accept-new``. A *changed* key is always refused. Fabric's
default ``AutoAddPolicy`` is replaced on every hop, ProxyJump gateways included.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ..errors import HostKeyError, RemoteError
from .reason import reason

# paramiko logs a transport thread's failure (e.g. no SSH banner) with its traceback; with no
# handler configured, Python prints that to stderr. The error reaches the operator as one
# RemoteError sentence instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class RemoteTarget:
    """Where to connect: ``host`` is ``user@host``, ``user@host:port`` or an ssh_config alias."""

    host: str
    ssh_config: Path | None = None
    accept_new_host_key: bool = False
    connect_timeout: int = 15
    accepted: list[str] = field(default_factory=list, compare=False, repr=False)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _paths(value: object, defaults: tuple[str, ...]) -> list[Path]:
    if value is None:
        items = list(defaults)
    elif isinstance(value, str):
        items = value.split()
    else:
        items = [str(v) for v in value]  # type: ignore[attr-defined]
    return [Path(os.path.expanduser(i)) for i in items if i.lower() != "none"]


class StrictHostKeyPolicy(paramiko.RejectPolicy):
    """Refuse unknown host keys; with ``accept_new`` add them to known_hosts (append only)."""

    def __init__(self, known_hosts_file: Path, accept_new: bool, accepted: list[str]) -> None:
        self.known_hosts_file = known_hosts_file
        self.accept_new = accept_new
        self.accepted = accepted

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        fp = fingerprint(key)
        if not self.accept_new:
            raise HostKeyError(
                f"The SSH host key of {hostname} is not known ({key.get_name()} {fp}); "
                f"refusing to connect.",
                hint=(
                    "If that fingerprint is the server's, accept it once with "
                    "--accept-new-host-key (make: ACCEPT_NEW_HOST_KEY=1); it is then added to "
                    f"{self.known_hosts_file}."
                ),
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        fd = os.open(self.known_hosts_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line)
        self.accepted.append(f"{hostname} {key.get_name()} {fp}")


def _harden(conn: object, target: RemoteTarget) -> None:
    """Load known_hosts into ``conn.client`` and install the strict policy (each hop)."""
    ssh_config = conn.ssh_config  # type: ignore[attr-defined]
    client: paramiko.SSHClient = conn.client  # type: ignore[attr-defined]
    user_files = _paths(ssh_config.get("userknownhostsfile"), DEFAULT_USER_KNOWN_HOSTS)
    global_files = _paths(ssh_config.get("globalknownhostsfile"), DEFAULT_GLOBAL_KNOWN_HOSTS)
    for path in global_files:
        if path.is_file():
            client.load_system_host_keys(str(path))
    for path in user_files:
        if path.is_file():
            client.load_host_keys(str(path))
    default = Path(os.path.expanduser(DEFAULT_USER_KNOWN_HOSTS[0]))
    writable = user_files[0] if user_files else default
    client.set_missing_host_key_policy(
        StrictHostKeyPolicy(writable, target.accept_new_host_key, target.accepted)
    )
    gateway = getattr(conn, "gateway", None)
    if gateway is not None and not isinstance(gateway, str) and hasattr(gateway, "client"):
        _harden(gateway, target)


def _chain(conn: object) -> list[object]:
    hops = [conn]
    gateway = getattr(conn, "gateway", None)
    while gateway is not None and not isinstance(gateway, str) and hasattr(gateway, "client"):
        hops.append(gateway)
        gateway = getattr(gateway, "gateway", None)
    return hops


def build_connection(target: RemoteTarget) -> object:
    """A Fabric Connection honouring ssh_config (IdentityFile, Port, User, ProxyJump, agent)."""
    from fabric import Config, Connection

    if target.ssh_config is not None and not target.ssh_config.is_file():
        raise RemoteError(f"SSH config file {target.ssh_config} does not exist.")
    config = (
        Config(runtime_ssh_path=str(target.ssh_config)) if target.ssh_config else Config()
    )
    conn = Connection(target.host, config=config)
    for hop in _chain(conn):
        _tie_timeouts(hop, target.connect_timeout)
    _harden(conn, target)
    return conn


def _tie_timeouts(conn: object, default: int) -> None:
    """ssh_config's ``ConnectTimeout`` (else ``default``) bounds the TCP connect *and* the wait
    for the server's SSH banner, so a port that accepts but stays silent fails as fast as one
    that does not answer (paramiko's own banner wait is 15 s whatever the connect timeout)."""
    timeout = getattr(conn, "connect_timeout", None) or default
    conn.connect_timeout = timeout  # type: ignore[attr-defined]
    kwargs = dict(getattr(conn, "connect_kwargs", None) or {})
    kwargs.setdefault("banner_timeout", timeout)
    conn.connect_kwargs = kwargs  # type: ignore[attr-defined]


@contextlib.contextmanager
def connect(target: RemoteTarget) -> Iterator[object]:
    """Open the connection (strict host keys), yield it, always close every hop."""
    conn = build_connection(target)
    where = f"{conn.user}@{conn.host}:{conn.port}"  # type: ignore[attr-defined]
    try:
        try:
            conn.open()  # type: ignore[attr-defined]
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"The SSH host key of {exc.hostname} has CHANGED (now {fingerprint(exc.key)}); "
                "refusing to connect: this can be an attack.",
                hint=(
                    "If the server was really reinstalled, remove the old entry with "
                    f"`ssh-keygen -R '{exc.hostname}'` and accept the new key."
                ),
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise RemoteError(
                f"SSH login to {where} was refused ({reason(exc)}).",
                hint="Check the user, IdentityFile and ssh-agent for this host in your ssh_config.",
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if _not_ssh(exc):
                raise RemoteError(
                    f"{where} did not answer as an SSH server (it accepted the connection but "
                    f"sent no SSH greeting within {conn.connect_timeout} s).",  # type: ignore[attr-defined]
                    hint="Check HOST and the port (ssh_config Port) point at the server's sshd.",
                ) from exc
            raise RemoteError(
                f"Cannot connect to {where} by SSH: {reason(exc)}.",
                hint="Check HOST (user@host:port or an ssh_config alias) and that sshd runs "
                "there.",
            ) from exc
        yield conn
    finally:
        for hop in _chain(conn):
            with contextlib.suppress(Exception):
                hop.close()  # type: ignore[attr-defined]


def _not_ssh(exc: BaseException) -> bool:
    """paramiko's ways of saying the peer never spoke SSH: no banner (timeout or EOF), a
    non-SSH banner, or a transport that died before a session existed."""
    if isinstance(exc, EOFError):
        return True
    text = str(exc)
    return isinstance(exc, paramiko.SSHException) and (
        "protocol banner" in text or "No existing session" in text or "Indecipherable" in text
    )


def describe(conn: object) -> str:
    return f"{conn.user}@{conn.host}:{conn.port}"  # type: ignore[attr-defined]
