"""`mmops tunnel backup|restore`: the engine runs here, the database is reached by SSH forwarding.

Nothing is installed on the server: DATABASE_URL is read from ENV_FILE over SSH (memory only) and
the engine connects through a forward from 127.0.0.1:<ephemeral>. Make: db-backup-ssh,
db-restore-ssh. Parse → call → render; the work is in ``ops.remote.tunnel_ops``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import RestoreRefused


def _split_patterns(values: tuple[str, ...]) -> list[str]:
    """``-t a -t b``, ``TABLES="a b"`` and ``TABLES=a,b`` all mean the same."""
    return [p for v in values for p in re.split(r"[,\s]+", v) if p]


def _common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host", envvar="HOST", show_envvar=True,
                     help="user@host, user@host:port or an ssh_config alias "
                     "[default: the local sandbox]."),
        click.option("--ssh-config", envvar="SSH_CONFIG", show_envvar=True,
                     help="An ssh_config file [default: your own]."),
        click.option("--env-file", envvar="ENV_FILE", show_envvar=True,
                     help="Dotenv file ON THE SERVER holding DATABASE_URL "
                     "[default: /etc/markdown-manager.env]."),
        click.option("--backup-dir", envvar="BACKUP_DIR", show_envvar=True,
                     type=click.Path(path_type=Path, file_okay=False),
                     default=Path("backups"), show_default=True,
                     help="Local directory for backups (and safety/ before a restore)."),
        click.option("--accept-new-host-key", envvar="ACCEPT_NEW_HOST_KEY", is_flag=True,
                     help="Accept and remember an unknown SSH host key (check its fingerprint)."),
        click.option("--jobs", "-j", type=click.IntRange(1, 16), default=2, show_default=True,
                     help="Parallel connections through the tunnel (one snapshot)."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
        click.option("--progress-json", is_flag=True, hidden=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _settings(host: str | None, ssh_config: str | None, env_file: str | None,
              accept_new_host_key: bool) -> Any:
    from .remote.target import resolve_settings

    return resolve_settings(
        host=host, ssh_config=ssh_config, env_file=env_file, ops_dir=None, python=None,
        accept_new_host_key=accept_new_host_key, notice=lambda m: click.echo(m, err=True),
    )


def _size(n: int) -> str:
    from .cli import _size as size

    return size(n)


@click.group()
def tunnel() -> None:
    """Back up / restore the server's database through an SSH tunnel (nothing installed there)."""


@tunnel.command("backup")
@_common_options
@click.option("--tables", "-t", multiple=True, envvar="TABLES", show_envvar=True,
              help="Only these tables (patterns, schema.name allowed; repeatable or "
              "comma/space separated).")
@click.option("--exclude-tables", "-T", multiple=True, envvar="EXCLUDE_TABLES",
              help="Skip these tables (patterns).")
def backup_cmd(
    host: str | None, ssh_config: str | None, env_file: str | None, backup_dir: Path,
    accept_new_host_key: bool, jobs: int, as_json: bool, progress_json: bool,
    tables: tuple[str, ...], exclude_tables: tuple[str, ...],
) -> None:
    """Dump the server's database into BACKUP_DIR through an SSH tunnel, verified."""
    from .cli import _echo_json, run_async
    from .progress_ui import progress_reporter
    from .remote.tunnel_ops import tunnel_backup
    from .remote.tunnel_session import tunnel_session

    settings = _settings(host, ssh_config, env_file, accept_new_host_key)
    with tunnel_session(settings) as session:
        click.echo(f"tunnel: {session.describe()}", err=True)
        with progress_reporter(json_lines=progress_json) as progress:
            result = run_async(tunnel_backup(
                session, backup_dir, jobs=jobs, tables=_split_patterns(tables),
                exclude_tables=_split_patterns(exclude_tables), progress=progress,
            ))
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(result.path)
    click.echo(
        f"backup of {result.database} on {result.host} (PostgreSQL {result.server_version}): "
        f"{_size(result.size_bytes)}, {len(result.tables)} tables, {result.total_rows} rows, "
        f"alembic {result.alembic_revision or '-'}, {result.duration_s:.1f}s; "
        f"{result.verified_members} members verified",
        err=True,
    )


@tunnel.command("restore")
@click.argument("backup", envvar="BACKUP", required=True)
@_common_options
@click.option("--tables", "-t", multiple=True, envvar="TABLES", show_envvar=True,
              help="Restore only these tables from a full backup (data-only into the "
              "existing schema).")
@click.option("--mode", type=click.Choice(["auto", "create", "replace", "data-only"]),
              default="auto", show_default=True,
              help="auto: replace, or data-only when --tables is given.")
@click.option("--yes", "-y", envvar="YES", is_flag=True,
              help="Do not ask to type the database name (automation).")
@click.option("--force", is_flag=True,
              help="Load even when alembic revisions or extra columns differ (data-only).")
@click.option("--lock-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for table locks before giving up.")
@click.option("--keep-safety", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="Safety backups to keep in BACKUP_DIR/safety.")
def restore_cmd(
    backup: str, host: str | None, ssh_config: str | None, env_file: str | None,
    backup_dir: Path, accept_new_host_key: bool, jobs: int, as_json: bool, progress_json: bool,
    tables: tuple[str, ...], mode: str, yes: bool, force: bool, lock_timeout: float,
    keep_safety: int,
) -> None:
    """Restore BACKUP (a file, or `latest` in BACKUP_DIR) into the server's database by tunnel.

    The file is verified, the plan shown, the database name typed (unless --yes); then a safety
    backup is taken through the same tunnel and the restore runs in one transaction.
    """
    from .archive import verify_archive
    from .cli import _confirm_plan, _echo_json, run_async
    from .progress_ui import progress_reporter
    from .remote.restore import resolve_backup_file
    from .remote.tunnel_ops import choose_mode, tunnel_plan, tunnel_restore
    from .remote.tunnel_session import tunnel_session

    archive = resolve_backup_file(backup, backup_dir)
    if _restore_foreign_file(archive, host, ssh_config, env_file, backup_dir,
                             accept_new_host_key, jobs, as_json, progress_json, tables, mode,
                             yes, force, lock_timeout, keep_safety):
        return
    report = verify_archive(archive)
    click.echo(f"verified {archive}: {report.members} members, every checksum matches", err=True)
    patterns = _split_patterns(tables)
    restore_mode = choose_mode(mode, patterns)
    settings = _settings(host, ssh_config, env_file, accept_new_host_key)
    with tunnel_session(settings) as session:
        click.echo(f"tunnel: {session.describe()}", err=True)
        plan = run_async(tunnel_plan(session, archive, mode=restore_mode, tables=patterns,
                                     force=force))
        click.echo(f"host {session.ssh}, backup {archive.name}", err=True)
        if not _confirm_plan(plan, yes, quiet=as_json):
            raise RestoreRefused("Restore cancelled; nothing was changed.")
        with progress_reporter(json_lines=progress_json) as progress:
            result = run_async(tunnel_restore(
                session, archive, plan, backup_dir=backup_dir, jobs=jobs, tables=patterns,
                force=force, lock_timeout=lock_timeout, keep_safety=keep_safety,
                progress=progress,
            ))
    if as_json:
        _echo_json(result.to_dict())
        return
    r = result.restore
    click.echo(
        f"restored {archive} into {r.database} on {result.host} ({r.mode.value}): "
        f"{len(r.tables)} tables, {r.total_rows} rows, alembic "
        f"{plan.backup_alembic_revision or '-'}, {result.duration_s:.1f}s"
    )
    click.echo(f"safety backup: {result.safety_backup}", err=True)
    for w in r.plan.warnings:
        click.echo(f"warning: {w}", err=True)


def _restore_foreign_file(
    path: Path, host: str | None, ssh_config: str | None, env_file: str | None,
    backup_dir: Path, accept_new_host_key: bool, jobs: int, as_json: bool, progress_json: bool,
    tables: tuple[str, ...], mode: str, yes: bool, force: bool, lock_timeout: float,
    keep_safety: int,
) -> bool:
    """An old JSON backup or plain SQL dump through the tunnel; False when ``path`` is neither."""
    from .cli import _confirm_foreign, _echo_json, run_async
    from .engine.foreign import restorer_for
    from .errors import UsageError
    from .progress_ui import progress_reporter
    from .remote.tunnel_ops import tunnel_restore_foreign
    from .remote.tunnel_session import tunnel_session

    restorer = restorer_for(path)
    if restorer is None:
        return False
    if tables or mode not in ("auto", "replace"):
        raise UsageError(
            f"{path.name} is an old JSON backup or a SQL dump: --tables and --mode apply to "
            ".mmops backups only."
        )
    settings = _settings(host, ssh_config, env_file, accept_new_host_key)
    with tunnel_session(settings) as session:
        click.echo(f"tunnel: {session.describe()}", err=True)
        click.echo(f"host {session.ssh}, file {path.name}", err=True)
        _confirm_foreign(path, session.url.database, yes)
        with progress_reporter(json_lines=progress_json) as progress:
            result = run_async(tunnel_restore_foreign(
                session, path, restorer, backup_dir=backup_dir, jobs=jobs, force=force,
                lock_timeout=lock_timeout, keep_safety=keep_safety, progress=progress,
            ))
    if as_json:
        _echo_json(result)
        return True
    rows = result["restore"].get("total_rows", 0)
    click.echo(f"restored {path} into {session.url.database} on {result['host']}: {rows} rows")
    click.echo(f"safety backup: {result['safety_backup']}", err=True)
    for w in result["restore"].get("warnings", []):
        click.echo(f"warning: {w}", err=True)
    return True
