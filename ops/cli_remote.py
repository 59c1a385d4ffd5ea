"""``mmops remote setup|backup|restore|status|doctor``: parse, open the connection, call, render.

The logic lives in ``ops.remote``; this module only turns options into settings, opens the one
SSH connection (``ops.remote.connection.connect``), calls one flow and renders its result.
Every option has the Make variable of the same name as its environment variable.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .engine.results import Progress
from .errors import OpsError, RestoreRefused


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _notice(text: str) -> None:
    click.echo(text, err=True)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich bar on a terminal; plain phase lines otherwise (make output, CI logs)."""
    if not enabled:
        yield lambda _p: None
        return
    if not sys.stderr.isatty():
        last: dict[str, Any] = {"phase": None}

        def plain(p: Progress) -> None:
            if p.phase != last["phase"]:
                last["phase"] = p.phase
                click.echo(f"  … {p.phase}" + (f": {p.message}" if p.message else ""), err=True)

        yield plain
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task("connecting", total=None)

        def rich_update(p: Progress) -> None:
            label = p.phase + (f" {p.item}" if p.item else "")
            if p.message and not p.item:
                label += f": {p.message}"
            bar.update(task, description=label[:50], completed=p.done, total=p.total)

        yield rich_update


def _settings(ctx: click.Context) -> Any:
    from .remote.target import resolve_settings

    o = ctx.obj
    return resolve_settings(
        host=o["host"],
        ssh_config=o["ssh_config"],
        env_file=o["env_file"],
        ops_dir=o["ops_dir"],
        python=o["python"],
        accept_new_host_key=o["accept_new_host_key"],
        notice=_notice,
    )


@contextlib.contextmanager
def _session(ctx: click.Context, *, sync: bool = True) -> Iterator[tuple[Any, Any]]:
    """Resolve settings, open the connection, bring the agent up to date (saying so)."""
    from .remote.connection import connect
    from .remote.provision import ensure_current

    settings = _settings(ctx)
    with connect(settings.target) as conn:
        for line in settings.target.accepted:
            _notice(f"Accepted and saved new host key: {line}")
        if sync:
            res = ensure_current(
                conn, host=settings.host_label, python=settings.python, ops_dir=settings.ops_dir
            )
            if res.action == "installed":
                _notice(f"The agent was not installed on the server: installed "
                        f"{res.identity.short} first.")
            elif res.action != "verified":
                _notice(
                    f"Drift: the server's agent ({(res.previous_hash or 'none')[:12]}) differed "
                    f"from the local package ({res.identity.short}): re-synced it first."
                )
            settings = settings.with_ops_dir(res.ops_dir)
        yield conn, settings


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group("remote")
@click.option("--host", envvar="HOST", help="user@host[:port] or ssh_config alias (default: "
              "the local sandbox).")
@click.option("--ssh-config", envvar="SSH_CONFIG", help="ssh_config file (default: yours).")
@click.option("--env-file", envvar="ENV_FILE",
              help="Server-side dotenv file with DATABASE_URL [/etc/markdown-manager.env].")
@click.option("--ops-dir", envvar="OPS_DIR", help="Agent dir on the server "
              "[~/markdown-manager-ops].")
@click.option("--python", "python", envvar="REMOTE_PYTHON",
              help="The server's python to build the venv with [python3].")
@click.option("--accept-new-host-key", is_flag=True, envvar="ACCEPT_NEW_HOST_KEY",
              help="Accept and save an unknown host key (never a changed one).")
@click.pass_context
def remote(
    ctx: click.Context,
    host: str | None,
    ssh_config: str | None,
    env_file: str | None,
    ops_dir: str | None,
    python: str | None,
    accept_new_host_key: bool,
) -> None:
    """Run backups and restores on the app server over SSH (the remote-ops agent)."""
    ctx.obj = {
        "host": host or None,
        "ssh_config": ssh_config or None,
        "env_file": env_file or None,
        "ops_dir": ops_dir or None,
        "python": python or None,
        "accept_new_host_key": accept_new_host_key,
    }


@remote.command("setup")
@click.option("--offline", is_flag=True, envvar="OFFLINE",
              help="Ship a wheelhouse: the server needs no package index.")
@click.option("--force", is_flag=True, help="Reinstall even when the agent is current.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def setup_cmd(ctx: click.Context, offline: bool, force: bool, as_json: bool) -> None:
    """Provision OPS_DIR/venv on the server with this package (idempotent)."""
    from .remote.connection import connect
    from .remote.provision import setup

    settings = _settings(ctx)
    with connect(settings.target) as conn:
        for line in settings.target.accepted:
            _notice(f"Accepted and saved new host key: {line}")
        res = setup(conn, host=settings.host_label, python=settings.python,
                    ops_dir=settings.ops_dir, offline=offline, force=force)
    if as_json:
        _emit_json(res.to_dict())
        return
    verb = {"verified": "already up to date (verified)", "installed": "installed",
            "updated": "updated (re-synced)", "repaired": "repaired"}[res.action]
    click.echo(f"Agent {res.identity.short} on {res.host}: {verb}.")
    click.echo(f"  dir     {res.ops_dir}  (python {res.python_version}, {res.python})")
    click.echo(f"  offline {'yes' if res.offline else 'no'}   took {res.duration_s:.1f}s")


@remote.command("backup")
@click.option("--backup-dir", envvar="BACKUP_DIR", default="./backups", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--jobs", "-j", default=2, show_default=True, type=int)
@click.option("--tables", envvar="TABLES", default=None, help="Comma-separated tables only.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def backup_cmd(
    ctx: click.Context, backup_dir: Path, jobs: int, tables: str | None, as_json: bool
) -> None:
    """Back up the server's database and pull the file into BACKUP_DIR (verified, 0600)."""
    from .remote.backup import remote_backup

    table_list = _split_tables(tables)
    with _session(ctx) as (conn, settings), _progress(not as_json) as progress:
        res = remote_backup(conn, settings, backup_dir=backup_dir, jobs=jobs,
                            tables=table_list, on_progress=progress)
    if as_json:
        _emit_json(res.to_dict())
        return
    for path in res.cleaned:
        _notice(f"Removed a leftover from an interrupted run: {path}")
    click.echo(f"Backup of {res.database} on {res.host} done.")
    click.echo(f"  file      {res.path}")
    click.echo(f"  size      {_human(res.size_bytes)}")
    click.echo(f"  tables    {len(res.tables)}")
    click.echo(f"  rows      {res.total_rows}")
    click.echo(f"  alembic   {res.alembic_revision or '-'}")
    click.echo(f"  duration  {res.duration_s:.1f}s")


def _split_tables(tables: str | None) -> list[str] | None:
    return [t.strip() for t in tables.split(",") if t.strip()] if tables else None


def _render_plan(plan: Any) -> None:
    click.echo(f"Restore onto {plan.host}, database {plan.database!r} (mode {plan.mode}):")
    click.echo(f"  backup     {plan.backup_file}")
    if plan.kind != "mmops":
        click.echo(f"  file       {plan.description}")
        click.echo(f"  alembic    file {plan.backup_alembic_revision or '-'}  /  live "
                   f"{plan.live_alembic_revision or '-'}")
        click.echo(f"  tables     {len(plan.tables)} in the file: {plan.rows_to_load} rows "
                   f"(live now: {plan.live_rows_replaced} rows)")
    else:
        click.echo(f"  taken      {plan.backup_created_at} from database {plan.backup_database!r}")
        click.echo(f"  alembic    backup {plan.backup_alembic_revision or '-'}  /  live "
                   f"{plan.live_alembic_revision or '-'}")
        only = f" (--tables {','.join(plan.selected_tables)})" if plan.selected_tables else ""
        click.echo(f"  tables     {len(plan.tables)} replaced{only}: {plan.live_rows_replaced} "
                   f"live rows → {plan.rows_to_load} rows from the backup")
    for t in plan.tables:
        live = "new" if t.live_rows is None else str(t.live_rows)
        click.echo(f"    {t.table:<40} {live:>10} → {t.backup_rows}")
    for name in plan.tables_dropped:
        click.echo(f"  will disappear: {name} (not in the backup)")
    for w in plan.warnings:
        click.echo(f"  warning: {w}")


@remote.command("restore")
@click.argument("backup", envvar="BACKUP", required=True)
@click.option("--backup-dir", envvar="BACKUP_DIR", default="./backups", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--yes", "-y", is_flag=True, envvar="YES",
              help="Do not ask to type the database name (automation).")
@click.option("--mode", type=click.Choice(["auto", "create", "replace", "data-only"]),
              default="auto", show_default=True)
@click.option("--tables", envvar="TABLES", default=None,
              help="Comma-separated tables (patterns) to restore from a .mmops backup, "
              "data-only into the existing schema.")
@click.option("--lock-timeout", default=30.0, show_default=True, type=float)
@click.option("--keep-safety", default=5, show_default=True, type=int,
              help="Safety backups kept in OPS_DIR/safety.")
@click.option("--force", is_flag=True, help="Data-only despite differing alembic revisions.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def restore_cmd(
    ctx: click.Context, backup: str, backup_dir: Path, yes: bool, mode: str, tables: str | None,
    lock_timeout: float, keep_safety: int, force: bool, as_json: bool,
) -> None:
    """Restore BACKUP (a .mmops file or `latest`, an old JSON backup, or a plain SQL dump)
    into the server's database, atomically."""
    from .remote.restore import (
        inspect_backup_file,
        plan_remote_restore,
        remote_restore,
        resolve_backup_file,
    )

    local = inspect_backup_file(resolve_backup_file(backup, backup_dir))
    with _session(ctx) as (conn, settings):
        plan = plan_remote_restore(conn, settings, local, mode=mode, tables=_split_tables(tables))
        if not as_json:
            _render_plan(plan)
        if not yes:
            typed = click.prompt(
                f"Type the database name ({plan.database}) to replace its contents",
                default="", show_default=False, err=True,
            )
            if typed.strip() != plan.database:
                raise RestoreRefused("The typed name did not match; nothing was changed.")
        with _progress(not as_json) as progress:
            res = remote_restore(conn, settings, local, plan, lock_timeout=lock_timeout,
                                 keep_safety=keep_safety, force=force, on_progress=progress)
    if as_json:
        _emit_json(res.to_dict())
        return
    click.echo(f"Restored {local.path.name} into {plan.database!r} on {plan.host}.")
    if res.rows_checked is None:
        click.echo(f"  tables         {res.tables}, {res.rows_restored} rows restored")
        click.echo(f"  row counts     {res.row_check}")
    else:
        click.echo(f"  tables         {res.tables}, row counts checked ({res.rows_checked} rows"
                   + ("" if res.row_check == "ok" else f"; {res.row_check}") + ")")
    if res.sequences_set:
        click.echo(f"  sequences      {res.sequences_set} set past the restored ids")
    click.echo(f"  alembic        {res.alembic_revision or '-'}")
    click.echo(f"  safety backup  {res.safety_backup} (on the server)")
    click.echo(f"  duration       {res.duration_s:.1f}s")
    for w in res.warnings:
        click.echo(f"  warning: {w}")


@remote.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the agent on the server and the live database."""
    from .remote.agent_run import run_agent

    with _session(ctx) as (conn, settings):
        st = run_agent(conn, settings.ops_dir, "status", "--env-file", settings.env_file)
    if as_json:
        _emit_json(st)
        return
    click.echo(f"Agent {st['version']} ({st['hash'][:12]}) on {settings.host_label}, "
               f"python {st['python']}")
    click.echo(f"Database {st['server']} (PostgreSQL {st['server_version']}), alembic "
               f"{st['alembic_revision'] or '-'}")
    for t in st["tables"]:
        click.echo(f"  {t['schema']}.{t['name']:<36} {t['rows']:>10} rows")


@remote.command("doctor")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check SSH, host key, python/venv, agent, env file, DATABASE_URL, database, disk."""
    from .remote.doctor import run_doctor

    report = run_doctor(_settings(ctx))
    if as_json:
        _emit_json(report.to_dict())
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
    from .remote.demo import demo_step as run_step

    click.echo(run_step(step))
