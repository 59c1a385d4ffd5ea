"""`mmops sandbox start|stop|status|env`: the embedded default (PostgreSQL + sshd on loopback)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError
from .shared import SharedOptions

if TYPE_CHECKING:
    from ..sandbox import manager


def _manager() -> ModuleType:
    """Imported on use: the sandbox pulls in alembic (and mako, pygments), which every other
    mmops command would otherwise pay for at start-up (~0.3-0.7 s)."""
    from ..sandbox import manager

    return manager

DIR = SharedOptions(click.option(
    "--dir", "state_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
    envvar="MMOPS_SANDBOX_DIR", show_envvar=True,
    help="State dir of the sandbox [default: ./.state/sandbox].",
))
_dir_option = DIR.command
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _render_status(st: manager.SandboxStatus) -> str:
    s = st.state
    if s is None:
        return f"sandbox: not running (no state in {st.state_dir})"
    word = "running" if st.running else "NOT fully running"
    pg = "up" if st.postgres_running else "down"
    sshd = "up" if st.sshd_running else "down"
    rows = ", ".join(f"{k} {v}" for k, v in s.rows.items())
    return "\n".join([
        f"sandbox: {word}{' (already running)' if st.already_running else ''} — {s.state_dir}",
        f"  postgres:  {pg}, PostgreSQL {s.postgres_major} on 127.0.0.1:{s.postgres_port} "
        f"(pid {s.postgres_pid})",
        f"  database:  {s.database_url_redacted}",
        f"  schema:    alembic {s.alembic_revision}; rows: {rows}",
        f"  sshd:      {sshd}, 127.0.0.1:{s.ssh_port} (pid {s.sshd_pid}), login user "
        f"{s.login_user}",
        f"  host key:  {s.host_key_fingerprint}",
        f"  ssh:       ssh -F {shlex.quote(s.ssh_config)} {s.ssh_alias}",
        f"  env file:  {s.env_file} (DATABASE_URL, 0600, owned by {s.login_user})",
        f"  use:       make db-backup-ops HOST={s.ssh_alias} "
        f"SSH_CONFIG={shlex.quote(s.ssh_config)} ENV_FILE={shlex.quote(s.env_file)}",
        *(f"  resumed:   {note}; the data was kept" for note in st.resumed),
    ])


@click.group()
@DIR.group
def sandbox() -> None:
    """A throwaway PostgreSQL + real sshd on 127.0.0.1 holding a markdown-manager-like app.
    --dir works before or after the subcommand."""


@sandbox.command()
@_dir_option
@click.option("--login-user", envvar="MMOPS_SANDBOX_USER", show_envvar=True, default=None,
              help="SSH login user to create (as root) [default: mmops-sandbox-<hash of the "
              "state dir>, one per checkout].")
@click.option("--users", default=20, show_default=True, help="Sample users to seed.")
@click.option("--documents", default=200, show_default=True, help="Sample documents to seed.")
@_json_option
def start(state_dir: Path | None, login_user: str | None, users: int, documents: int,
          as_json: bool) -> None:
    """Start the sandbox (idempotent)."""
    st = _manager().start(state_dir, login_user=login_user, users=users, documents=documents)
    click.echo(json.dumps(st.to_dict(), indent=2) if as_json else _render_status(st))


@sandbox.command()
@_dir_option
@_json_option
def stop(state_dir: Path | None, as_json: bool) -> None:
    """Stop sshd and PostgreSQL and remove the state dir."""
    res = _manager().stop(state_dir)
    if as_json:
        click.echo(json.dumps({
            "state_dir": str(res.state_dir),
            "stopped_postgres_pid": res.stopped_postgres_pid,
            "stopped_sshd_pid": res.stopped_sshd_pid,
            "removed_user": res.removed_user,
            "removed_state_dir": res.removed_state_dir,
        }, indent=2))
        return
    parts = []
    if res.stopped_sshd_pid:
        parts.append(f"sshd (pid {res.stopped_sshd_pid})")
    if res.stopped_postgres_pid:
        parts.append(f"PostgreSQL (pid {res.stopped_postgres_pid})")
    what = " and ".join(parts) if parts else "nothing was running"
    extra = f"; removed user {res.removed_user}" if res.removed_user else ""
    gone = "; state dir removed" if res.removed_state_dir else ""
    click.echo(f"sandbox stopped: {what}{extra}{gone}.")


@sandbox.command()
@_dir_option
@_json_option
@click.pass_context
def status(ctx: click.Context, state_dir: Path | None, as_json: bool) -> None:
    """Show the sandbox (password redacted); exit 1 when it is not running."""
    st = _manager().status(state_dir)
    click.echo(json.dumps(st.to_dict(), indent=2) if as_json else _render_status(st))
    if not st.running:
        ctx.exit(1)


@sandbox.command()
@_dir_option
@_json_option
def env(state_dir: Path | None, as_json: bool) -> None:
    """Print HOST, SSH_CONFIG and ENV_FILE for the remote targets (shell syntax)."""
    st = _manager().status(state_dir)
    if st.state is None or not st.running:
        raise ConfigError("The sandbox is not running.", hint="Start it with: make sandbox")
    values = st.state.env_vars()
    if as_json:
        click.echo(json.dumps(values, indent=2))
    else:
        for key, value in values.items():
            click.echo(f"{key}={shlex.quote(value)}")
