"""``mmops tunnel backup|restore``: the engine runs here, the database is reached by SSH forwarding.

Nothing is installed on the server: DATABASE_URL is read from ENV_FILE over SSH (memory only) and
the engine connects through a forward from 127.0.0.1:<ephemeral>. Make: db-backup-ssh,
db-restore-ssh. Parse → open the tunnel transport → the same job every mode uses → render.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
from .shared import remote_settings, ssh_options

SSH = ssh_options()


def _opener(remote: dict[str, Any], safety_dir: Path) -> Any:
    from ..transport.tunnel import open_tunnel

    @contextlib.contextmanager
    def open_transport() -> Iterator[Any]:
        # resolved here, not before: without HOST this starts the sandbox, which a usage
        # error (a missing backup file) must not do
        with open_tunnel(remote_settings(remote, notice), safety_dir) as transport:
            notice(f"tunnel: {transport.session.describe()}")
            yield transport

    return open_transport


@click.group()
@SSH.group
def tunnel() -> None:
    """Back up / restore the server's database through an SSH tunnel (nothing installed there).
    The SSH options work before or after the subcommand."""


@tunnel.command("backup")
@SSH.command
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
    backup_dir: Path, jobs: int, tables: tuple[str, ...], exclude_tables: tuple[str, ...],
    as_json: bool, progress_json: bool, repo: str | None, encrypt_to: str | None,
    lock_days: int | None, keep: str | None, keep_local: bool, yield_after: float,
    backup_lock_timeout: float, **remote: Any,
) -> None:
    """Dump the server's database into BACKUP_DIR through an SSH tunnel, verified (and store
    it in REPO, encrypted with ENCRYPT_TO, when asked)."""
    from ..steps.results import BackupRequest

    request = BackupRequest(jobs=jobs, tables=split_patterns(tables),
                            exclude_tables=split_patterns(exclude_tables), yield_after=yield_after,
                            lock_timeout=backup_lock_timeout,
                            publish=publish_request(repo, encrypt_to, lock_days, keep,
                                                    keep_local, default_repo=backup_dir))
    opener = _opener(remote, backup_dir / "safety")
    backup_command(opener, backup_dir, request, as_json=as_json, progress_json=progress_json)


@tunnel.command("restore")
@click.argument("backup", envvar="BACKUP", required=False)
@SSH.command
@restore_options
def restore_cmd(
    backup: str | None, mode: str, tables: tuple[str, ...], yes: bool, force: bool,
    no_owner: bool, no_privileges: bool,
    lock_timeout: float, keep_safety: int, backup_dir: Path, jobs: int, as_json: bool,
    progress_json: bool, repo: str | None, identity: str | None, from_database: str | None,
    with_dependents: bool,
    **remote: Any,
) -> None:
    """Restore BACKUP (a file, or `latest` in BACKUP_DIR) into the server's database by tunnel.

    The file is verified, the plan shown, the database name typed (unless --yes); then a safety
    backup is taken through the same tunnel into BACKUP_DIR/safety and the restore runs in one
    transaction.
    """
    opener = _opener(remote, backup_dir / "safety")
    restore_command(
        opener, backup, backup_dir=backup_dir, mode=mode, tables=tables, yes=yes, force=force,
        no_owner=no_owner, no_privileges=no_privileges,
        lock_timeout=lock_timeout, keep_safety=keep_safety, jobs=jobs, as_json=as_json,
        progress_json=progress_json, repo=repo, identity=identity, from_database=from_database,
        with_dependents=with_dependents,
    )
