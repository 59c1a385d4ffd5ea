"""A real OpenSSH ``sshd`` on 127.0.0.1 with its own host key, login user and client files.

Used by the tests (the ``sshd`` fixture) and by ``mmops sandbox``. Everything it needs lives in a
private state dir (0700): host key, sshd_config, pid file, log, the client key pair, a known_hosts
file holding the host key for ``[127.0.0.1]:PORT`` and an ssh_config snippet with a Host alias.

As root, sshd runs privileged (``/usr/sbin/sshd`` by absolute path, as sshd requires for re-exec)
and the login user is a dedicated account created with ``useradd`` (its password field is ``*``:
with ``UsePAM no`` an account locked with ``!`` is refused). Its authorized_keys file lives in
that user's home (``~/.ssh/authorized_keys``) because sshd opens it *as the login user* and, with
``StrictModes yes``, checks every directory from the file up to the home dir; the root-only state
dir can satisfy neither. As a normal user, an unprivileged sshd can only log in as that same
user; see ``_auth_keys_path`` for why ``StrictModes`` is off there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import ConfigError
from ..process import CommandResult, cmdline, pid_alive, run_command, terminate_pid
from .postgres import free_port

SSHD = Path("/usr/sbin/sshd")
INSTALL_HINT = "apt-get install -y openssh-server"
DEFAULT_LOGIN_USER = "mmops-sandbox"
DEFAULT_ALIAS = "mmops-sandbox"
USER_COMMENT = "markdown-manager-ops sandbox"  # marks accounts the sandbox created
OWNER_FILE = ".mmops-sandbox-owner"  # in the login user's home: the state dir that uses it


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Create ``path`` with ``mode`` from the start (no window with a wider mode)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _cfg_value(value: object) -> str:
    text = str(value)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def fingerprint_sha256(public_key_line: str) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it, from an OpenSSH public key line."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass
class SshServer:
    """An OpenSSH sshd on 127.0.0.1:``port`` whose files all live in ``state_dir``.

    ``login_user``: defaults to ``mmops-sandbox`` as root (created if missing, removed again by
    ``stop()`` only when this instance created it) and to the current user otherwise.
    """

    state_dir: Path
    port: int = 0
    login_user: str | None = None
    alias: str = DEFAULT_ALIAS
    created_user: bool = False
    sshd_binary: Path = SSHD
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).absolute()
        if self.login_user is None:
            self.login_user = (
                DEFAULT_LOGIN_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
            )

    # ---- paths -------------------------------------------------------------------------------
    @property
    def user(self) -> str:
        assert self.login_user is not None
        return self.login_user

    @property
    def privileged(self) -> bool:
        return os.geteuid() == 0

    @property
    def host_key(self) -> Path:
        return self.state_dir / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.state_dir / "sshd_config"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "sshd.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "sshd.log"

    @property
    def client_key(self) -> Path:
        """The client's private key (0600); ``.pub`` beside it."""
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        """An ssh_config file with ``Host <alias>``; use as ``ssh -F <this> <alias>``."""
        return self.state_dir / "ssh_config"

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.user).pw_dir)

    @property
    def authorized_keys(self) -> Path:
        return self._auth_keys_path()

    def _auth_keys_path(self) -> Path:
        if self.privileged:
            return self.home / ".ssh" / "authorized_keys"
        # Unprivileged: the keys file stays in our own 0700 state dir rather than the user's real
        # ~/.ssh. StrictModes is off for this case only, because the state dir may sit under a
        # world-writable, sticky /tmp, which StrictModes rejects; an unprivileged sshd can only
        # authenticate the very user running it, so the check protects nothing here.
        return self.state_dir / "authorized_keys"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def host_key_fingerprint(self) -> str:
        """The server's host key as ``SHA256:...`` (what ssh shows on first contact)."""
        return fingerprint_sha256(self.host_key.with_suffix(".pub").read_text())

    @property
    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...`` (no comment)."""
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

    @property
    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and str(self.sshd_config) in " ".join(cmdline(pid))

    # ---- client helpers -----------------------------------------------------------------------
    def ssh_argv(self, *cmd: str, options: Sequence[str] = ()) -> list[str]:
        """``ssh -F <ssh_config> [options] <alias> [cmd...]`` for tests and demos."""
        return ["ssh", "-F", str(self.ssh_config), *options, self.alias, *cmd]

    def sftp_argv(self, batch_file: Path) -> list[str]:
        return ["sftp", "-F", str(self.ssh_config), "-b", str(batch_file), self.alias]

    def write_user_file(self, relpath: str, text: str, mode: int = 0o600) -> Path:
        """Write a file in the login user's home, owned by that user (e.g. a server env file)."""
        path = self.home / relpath
        pw = pwd.getpwnam(self.user)
        for parent in reversed(path.relative_to(self.home).parents):
            d = self.home / parent
            if not d.exists():
                d.mkdir(mode=0o700)
                os.chown(d, pw.pw_uid, pw.pw_gid)
        write_private(path, text, mode)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SshServer:
        if not self.sshd_binary.exists():
            hint = INSTALL_HINT if self.privileged else f"sudo {INSTALL_HINT}"
            raise ConfigError(f"OpenSSH server is not installed ({self.sshd_binary} is missing).",
                              hint=f"Install it with: {hint}")
        if not shutil.which("ssh-keygen"):
            raise ConfigError("ssh-keygen is missing.", hint="Install it with: "
                              "apt-get install -y openssh-client")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.state_dir, 0o700)
        if self.privileged:
            self._ensure_login_user()
            # sshd's compiled-in privilege separation directory.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._make_keys()
        self._install_authorized_key()
        last_error: ConfigError | None = None
        for _attempt in range(3):
            if not self.port or last_error is not None:
                self.port = free_port()
            self._write_configs()
            try:
                self._spawn()
                return self
            except ConfigError as exc:  # usually: the free port was taken meanwhile
                last_error = exc
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """End sshd (and nothing else), then remove the login user if this instance created it."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        else:
            pid = self.pid
            if pid is not None:
                terminate_pid(pid, must_contain=str(self.sshd_config))
        self.pid_file.unlink(missing_ok=True)
        if not self.privileged or not self._owns_login_user():
            return  # another sandbox uses this account now: its access stays as it is
        if self.created_user:
            self._remove_login_user()
        else:
            self._remove_authorized_key()

    def destroy(self) -> None:
        """``stop()`` and remove the state dir."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # ---- internals ----------------------------------------------------------------------------
    def _ensure_login_user(self) -> None:
        try:
            existing = pwd.getpwnam(self.user)
        except KeyError:
            existing = None
        if existing is not None:
            # Only ever adopt an account an earlier sandbox made (e.g. left by a crash): we rewrite
            # its authorized_keys and password field, which must never happen to a real user.
            if existing.pw_gecos != USER_COMMENT:
                raise ConfigError(
                    f"User {self.user!r} already exists and was not created by the sandbox.",
                    hint="Choose another login user (MMOPS_SANDBOX_USER).",
                )
            # Nor one another live sandbox (another checkout) logs in as: taking it over would
            # replace that sandbox's key and env file, and stopping ours would delete its user.
            owner = self._recorded_owner()
            if owner is not None and owner != self.state_dir and owner.is_dir():
                raise ConfigError(
                    f"User {self.user!r} is the login user of another sandbox ({owner}); "
                    "refusing to take it over.",
                    hint="Choose another login user (MMOPS_SANDBOX_USER), or stop that sandbox "
                    "first.",
                )
            self.created_user = True
        else:
            # useradd takes a lock on /etc/passwd; parallel test sessions may collide briefly.
            for attempt in range(10):
                res = run_command(
                    ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group",
                     "--comment", USER_COMMENT, self.user],
                    check=False,
                )
                if res.returncode == 0:
                    break
                if res.returncode == 9:  # exists (another process won the race)
                    break
                if attempt == 9:
                    raise ConfigError(
                        f"Could not create the sandbox login user {self.user!r}: "
                        f"{res.stderr.strip()}"
                    ) from None
                time.sleep(0.3)
            self.created_user = True
        # With UsePAM no, sshd refuses accounts whose password field starts with '!' (locked);
        # '*' means "no password login possible" and still allows public-key login.
        run_command(["usermod", "-p", "*", self.user])
        pw = pwd.getpwnam(self.user)
        home = Path(pw.pw_dir)
        if not home.exists():
            home.mkdir(parents=True, mode=0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        os.chmod(home, 0o700)
        write_private(home / OWNER_FILE, f"{self.state_dir}\n")  # root's, 0600

    def _recorded_owner(self) -> Path | None:
        try:
            text = (self.home / OWNER_FILE).read_text().strip()
        except (OSError, KeyError):
            return None
        return Path(text) if text else None

    def _owns_login_user(self) -> bool:
        owner = self._recorded_owner()
        return owner is None or owner == self.state_dir

    def _remove_login_user(self) -> None:
        for args in (["userdel", "--remove", self.user],
                     ["userdel", "--force", "--remove", self.user]):
            for _ in range(10):
                res = run_command(args, check=False)
                # 6: no such user; 12: could not remove home (already gone) — both are fine.
                if res.returncode in (0, 6, 12):
                    return
                if "lock" not in res.stderr:
                    break
                time.sleep(0.3)

    def _make_keys(self) -> None:
        for key, comment in ((self.host_key, "mmops-sandbox-host"),
                             (self.client_key, "mmops-sandbox-client")):
            if key.exists() and key.with_suffix(".pub").exists():
                continue
            key.unlink(missing_ok=True)
            key.with_suffix(".pub").unlink(missing_ok=True)
            # -N '' means "no passphrase": nothing secret is on this command line.
            run_command(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                         "-f", str(key)])
            os.chmod(key, 0o600)

    def _install_authorized_key(self) -> None:
        pub = self.client_key.with_suffix(".pub").read_text().strip()
        # restrict X11/agent forwarding; port forwarding stays (the tunnel mode needs it).
        line = f"no-agent-forwarding,no-X11-forwarding {pub}\n"
        path = self._auth_keys_path()
        if self.privileged:
            pw = pwd.getpwnam(self.user)
            ssh_dir = path.parent
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            os.chown(ssh_dir, pw.pw_uid, pw.pw_gid)
            os.chmod(ssh_dir, 0o700)
            write_private(path, line)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        else:
            write_private(path, line)

    def _remove_authorized_key(self) -> None:
        with contextlib.suppress(OSError, KeyError):
            self._auth_keys_path().unlink(missing_ok=True)

    def _write_configs(self) -> None:
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {_cfg_value(self.host_key)}",
            f"PidFile {_cfg_value(self.pid_file)}",
            f"AuthorizedKeysFile {_cfg_value(self._auth_keys_path())}",
            f"StrictModes {'yes' if self.privileged else 'no'}",
            f"AllowUsers {self.user}",
            "UsePAM no",
            "PermitRootLogin no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitEmptyPasswords no",
            "PermitUserEnvironment no",
            "AllowTcpForwarding yes",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PrintMotd no",
            "UseDNS no",
            "LoginGraceTime 30",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]
        # No AcceptEnv line: the client cannot pass environment variables to the server.
        write_private(self.sshd_config, "\n".join(lines) + "\n", 0o600)
        write_private(self.known_hosts, f"[127.0.0.1]:{self.port} {self.host_public_key}\n")
        client = [
            f"Host {self.alias}",
            "    HostName 127.0.0.1",
            f"    Port {self.port}",
            f"    User {self.user}",
            f"    IdentityFile {_cfg_value(self.client_key)}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {_cfg_value(self.known_hosts)}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    PasswordAuthentication no",
            "    KbdInteractiveAuthentication no",
            "    BatchMode yes",
            "    ForwardAgent no",
        ]
        write_private(self.ssh_config, "\n".join(client) + "\n")

    def _spawn(self) -> None:
        self.log_file.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        # Validate the config first: a clear error beats a dead child.
        run_command([str(self.sshd_binary), "-t", "-f", str(self.sshd_config)])
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        self._proc = subprocess.Popen(
            [str(self.sshd_binary), "-D", "-f", str(self.sshd_config), "-E", str(self.log_file)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # Ctrl-C in the operator's terminal must not kill it
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise ConfigError(f"sshd exited at start: {self._log_tail()}")
            if self._banner_ok():
                return
            time.sleep(0.05)
        self._proc.kill()
        self._proc.wait()
        self._proc = None
        raise ConfigError(f"sshd did not answer on 127.0.0.1:{self.port}: {self._log_tail()}")

    def _banner_ok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"

    def detach(self) -> None:
        """Forget the child handle so sshd outlives this process (``mmops sandbox start``).

        Later, ``stop()`` from any process finds it by its pid file.
        """
        if self._proc is not None:
            # Mark as reaped so Popen.__del__ does not warn about a still-running child.
            self._proc.returncode = 0
            self._proc = None


def unique_login_user(prefix: str = "mmops-t") -> str:
    """A fresh login user name for one test session (so parallel sessions never share one)."""
    return f"{prefix}{secrets.token_hex(4)}"


__all__ = [
    "CommandResult",
    "SshServer",
    "fingerprint_sha256",
    "pid_alive",
    "run_command",
    "terminate_pid",
    "unique_login_user",
    "write_private",
]
