"""``mmops remote setup|backup|restore|status|doctor``: the remote-ops agent over SSH.

Parse → open the agent transport (one strict SSH connection, agent brought up to date) → call
the same job every mode uses → render. Every option has the Make variable of the same name as
its environment variable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import OpsError
from .common import count, echo_json, notice, publish_options, publish_request, restore_options
from .flows import backup_command, restore_command
from .shared import agent_options, remote_settings

SSH = agent_options()


def _settings(remote: dict[str, Any]) -> Any:
    return remote_settings(remote, notice)


def _opener(remote: dict[str, Any]) -> Any:
    from ..transport.agent import open_agent

    @contextlib.contextmanager
    def open_transport() -> Iterator[Any]:
        # resolved here, not before: without HOST this starts the sandbox, which a usage
        # error (a missing backup file) must not do
        with open_agent(_settings(remote), notice=notice) as transport:
            yield transport

    return open_transport


@click.group("remote")
@SSH.group
def remote() -> None:
    """Run backups and restores on the app server over SSH (the remote-ops agent). The SSH
    options work before or after the subcommand."""


@remote.command("setup")
@click.option("--offline", is_flag=True, envvar="OFFLINE", show_envvar=True,
              help="Ship a wheelhouse: the server needs no package index.")
@click.option("--force", is_flag=True, help="Reinstall even when the agent is current.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@SSH.command
def setup_cmd(offline: bool, force: bool, as_json: bool, **remote: Any) -> None:
    """Provision OPS_DIR/venv on the server with this package (idempotent)."""
    from ..provision.install import setup
    from ..ssh.connection import connect

    settings = _settings(remote)
    with connect(settings.target) as conn:
        for line in settings.target.accepted:
            notice(f"Accepted and saved new host key: {line}")
        res = setup(conn, host=settings.host_label, python=settings.python,
                    ops_dir=settings.ops_dir, offline=offline, force=force)
    if as_json:
        echo_json(res.to_dict())
        return
    verb = {"verified": "already up to date (verified)", "installed": "installed",
            "updated": "updated (re-synced)", "repaired": "repaired"}[res.action]
    click.echo(f"Agent {res.identity.short} on {res.host}: {verb}.")
    click.echo(f"  dir     {res.ops_dir}  (python {res.python_version}, {res.python})")
    click.echo(f"  offline {'yes' if res.offline else 'no'}   took {res.duration_s:.1f}s")


@remote.command("backup")
@click.option("--backup-dir", envvar="BACKUP_DIR", default="./backups", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Local directory the verified backup is pulled into.")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Parallel connections reading one consistent snapshot on the server.")
@click.option("--tables", "-t", multiple=True, envvar="TABLES",
              help="Only these tables (patterns, comma/space separated).")
@click.option("--exclude-tables", "-T", multiple=True, envvar="EXCLUDE_TABLES",
              help="Skip these tables (patterns).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--progress-json", is_flag=True, hidden=True)
@publish_options
@click.option("--repo-env-file", envvar="REPO_ENV_FILE",
              help="Server-side dotenv file with the storage settings (AWS_*, …) [ENV_FILE].")
@SSH.command
def backup_cmd(
    backup_dir: Path, jobs: int, tables: tuple[str, ...],
    exclude_tables: tuple[str, ...], as_json: bool, progress_json: bool, repo: str | None,
    encrypt_to: str | None, lock_days: int | None, keep: str | None, keep_local: bool,
    yield_after: float, backup_lock_timeout: float, repo_env_file: str | None, **remote: Any,
) -> None:
    """Back up the server's database and pull the file into BACKUP_DIR (verified, 0600); with
    REPO, the server uploads it there directly (encrypted with ENCRYPT_TO)."""
    from ..steps.results import BackupRequest
    from .common import split_patterns

    request = BackupRequest(jobs=jobs, tables=split_patterns(tables),
                            exclude_tables=split_patterns(exclude_tables), yield_after=yield_after,
                            lock_timeout=backup_lock_timeout,
                            publish=publish_request(repo, encrypt_to, lock_days, keep,
                                                    keep_local, default_repo=backup_dir,
                                                    repo_env_file=repo_env_file))
    backup_command(_opener(remote), backup_dir, request, as_json=as_json,
                   progress_json=progress_json, detailed=True)


@remote.command("restore")
@click.argument("backup", envvar="BACKUP", required=False)
@restore_options
@SSH.command
def restore_cmd(
    backup: str | None, mode: str, tables: tuple[str, ...], yes: bool,
    force: bool, no_owner: bool, no_privileges: bool, lock_timeout: float, keep_safety: int,
    backup_dir: Path, jobs: int,
    as_json: bool, progress_json: bool, repo: str | None, identity: str | None,
    from_database: str | None, with_dependents: bool, **remote: Any,
) -> None:
    """Restore BACKUP (a .mmops file or `latest`, an old JSON backup, or a plain SQL dump)
    into the server's database, atomically (safety backup in OPS_DIR/safety first)."""
    restore_command(
        _opener(remote), backup, backup_dir=backup_dir, mode=mode, tables=tables, yes=yes,
        force=force, no_owner=no_owner, no_privileges=no_privileges, lock_timeout=lock_timeout,
        keep_safety=keep_safety, jobs=jobs,
        as_json=as_json, progress_json=progress_json, repo=repo, identity=identity,
        from_database=from_database,
        with_dependents=with_dependents,
    )


@remote.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@SSH.command
def status_cmd(as_json: bool, **remote: Any) -> None:
    """Show the agent on the server and the live database."""
    with _opener(remote)() as transport:
        st = transport.version()
    if as_json:
        echo_json(st)
        return
    live = st["status"]
    click.echo(f"Agent {st['version']} ({st['hash'][:12]}) on {transport.label}, "
               f"python {st['python']}")
    click.echo(f"Database {live['server']} (PostgreSQL {live['server_version']}), alembic "
               f"{live['alembic_revision'] or '-'}")
    for t in live["tables"]:
        click.echo(f"  {t['schema']}.{t['name']:<36} {count(t['rows'], 'row'):>15}")


@remote.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@SSH.command
def doctor_cmd(as_json: bool, **remote: Any) -> None:
    """Check SSH, host key, python/venv, agent, env file, DATABASE_URL, database, disk."""
    from ..provision.doctor import run_doctor

    report = run_doctor(_settings(remote))
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"Doctor for {report.host}:")
        for c in report.checks:
            click.echo(f"  [{'ok' if c.ok else 'FAIL'}] {c.name:<13} {c.detail}")
            if not c.ok and c.fix:
                click.echo(f"         fix: {c.fix}")
    if not report.ok:
        raise OpsError(
            f"{sum(not c.ok for c in report.checks)} check(s) failed; see the fixes above."
        )


@remote.command("demo-step", hidden=True)
@click.argument("step", type=click.Choice(["snapshot", "change", "check"]))
def demo_step(step: str) -> None:
    """Used by `make demo` against the sandbox: record, change visibly, check the data is back."""
    from ..sandbox.demo import demo_step as run_step

    click.echo(run_step(step))
