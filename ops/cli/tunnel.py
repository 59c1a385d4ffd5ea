"""``mmops tunnel backup|restore``: the engine runs here, the database is reached by SSH forwarding.

Nothing is installed on the server: DATABASE_URL is read from ENV_FILE over SSH (memory only) and
the engine connects through a forward from 127.0.0.1:<ephemeral>. Make: db-backup-ssh,
db-restore-ssh. Parse → open the tunnel transport → the same job every mode uses → render.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .common import (
    notice,
    publish_options,
    publish_request,
    restore_options,
    split_patterns,
)
from .flows import backup_command, restore_command


def _ssh_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host", envvar="HOST", show_envvar=True,
                     help="user@host, user@host:port or an ssh_config alias "
                     "[default: the local sandbox]."),
        click.option("--ssh-config", envvar="SSH_CONFIG", show_envvar=True,
                     help="An ssh_config file [default: your own]."),
        click.option("--env-file", envvar="ENV_FILE", show_envvar=True,
                     help="Dotenv file ON THE SERVER holding DATABASE_URL "
                     "[default: /etc/markdown-manager.env]."),
        click.option("--accept-new-host-key", envvar="ACCEPT_NEW_HOST_KEY", is_flag=True,
                     help="Accept and remember an unknown SSH host key (check its fingerprint)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _opener(host: str | None, ssh_config: str | None, env_file: str | None,
            accept_new_host_key: bool, safety_dir: Path) -> Any:
    from ..config import resolve_settings
    from ..transport.tunnel import open_tunnel

    settings = resolve_settings(
        host=host, ssh_config=ssh_config, env_file=env_file, ops_dir=None, python=None,
        accept_new_host_key=accept_new_host_key, notice=notice,
    )

    @contextlib.contextmanager
    def open_transport() -> Iterator[Any]:
        with open_tunnel(settings, safety_dir) as transport:
            notice(f"tunnel: {transport.session.describe()}")
            yield transport

    return open_transport


@click.group()
def tunnel() -> None:
    """Back up / restore the server's database through an SSH tunnel (nothing installed there)."""


@tunnel.command("backup")
@_ssh_options
@click.option("--backup-dir", envvar="BACKUP_DIR", show_envvar=True,
              type=click.Path(path_type=Path, file_okay=False), default=Path("backups"),
              show_default=True, help="Local directory for backups.")
@click.option("--jobs", "-j", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Parallel connections through the tunnel (one snapshot).")
@click.option("--tables", "-t", multiple=True, envvar="TABLES", show_envvar=True,
              help="Only these tables (patterns, schema.name allowed; repeatable or "
              "comma/space separated).")
@click.option("--exclude-tables", "-T", multiple=True, envvar="EXCLUDE_TABLES",
              help="Skip these tables (patterns).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--progress-json", is_flag=True, hidden=True)
@publish_options
def backup_cmd(
    host: str | None, ssh_config: str | None, env_file: str | None, accept_new_host_key: bool,
    backup_dir: Path, jobs: int, tables: tuple[str, ...], exclude_tables: tuple[str, ...],
    as_json: bool, progress_json: bool, repo: str | None, encrypt_to: str | None,
    lock_days: int | None, keep: str | None, keep_local: bool, yield_after: float,
    backup_lock_timeout: float,
) -> None:
    """Dump the server's database into BACKUP_DIR through an SSH tunnel, verified (and store
    it in REPO, encrypted with ENCRYPT_TO, when asked)."""
    from ..steps.results import BackupRequest

    request = BackupRequest(jobs=jobs, tables=split_patterns(tables),
                            exclude_tables=split_patterns(exclude_tables), yield_after=yield_after,
                            lock_timeout=backup_lock_timeout,
                            publish=publish_request(repo, encrypt_to, lock_days, keep,
                                                    keep_local, default_repo=backup_dir))
    opener = _opener(host, ssh_config, env_file, accept_new_host_key, backup_dir / "safety")
    backup_command(opener, backup_dir, request, as_json=as_json, progress_json=progress_json)


@tunnel.command("restore")
@click.argument("backup", envvar="BACKUP", required=True)
@_ssh_options
@restore_options
def restore_cmd(
    backup: str, host: str | None, ssh_config: str | None, env_file: str | None,
    accept_new_host_key: bool, mode: str, tables: tuple[str, ...], yes: bool, force: bool,
    no_owner: bool, no_privileges: bool,
    lock_timeout: float, keep_safety: int, backup_dir: Path, jobs: int, as_json: bool,
    progress_json: bool, repo: str | None, identity: str | None,
) -> None:
    """Restore BACKUP (a file, or `latest` in BACKUP_DIR) into the server's database by tunnel.

    The file is verified, the plan shown, the database name typed (unless --yes); then a safety
    backup is taken through the same tunnel into BACKUP_DIR/safety and the restore runs in one
    transaction.
    """
    opener = _opener(host, ssh_config, env_file, accept_new_host_key, backup_dir / "safety")
    restore_command(
        opener, backup, backup_dir=backup_dir, mode=mode, tables=tables, yes=yes, force=force,
        no_owner=no_owner, no_privileges=no_privileges,
        lock_timeout=lock_timeout, keep_safety=keep_safety, jobs=jobs, as_json=as_json,
        progress_json=progress_json, repo=repo, identity=identity,
    )
