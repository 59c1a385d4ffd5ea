"""The `mmops` command line: parse → call one function → render → exit code. No logic here."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import Interrupted, OpsError

T = TypeVar("T")


class OpsGroup(click.Group):
    """Maps our exception tree to one clear sentence on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was changed (partial files removed).", err=True)
            ctx.exit(Interrupted.exit_code)


def _sigterm_as_interrupt() -> None:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    _sigterm_as_interrupt()
    return asyncio.run(coro)


@click.group(cls=OpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmops")
def main() -> None:
    """Back up and restore markdown-manager's PostgreSQL database."""


# --- shared options ------------------------------------------------------------------------

def database_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--database-url",
        envvar=None,
        help="Database URL. Prefer DATABASE_URL or --env-file: a URL here is visible to "
        "other users in the process list.",
    )(f)
    f = click.option(
        "--env-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="A dotenv file defining DATABASE_URL.",
    )(f)
    return f


def _db_url(database_url: str | None, env_file: Path | None):
    from .dburl import resolve_database_url

    return resolve_database_url(database_url=database_url, env_file=env_file)


def _echo_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{n} B"


# --- backup --------------------------------------------------------------------------------

@main.command()
@database_options
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="Backup file, or a directory for the default name.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Parallel connections reading one consistent snapshot.")
@click.option("--tables", "-t", multiple=True,
              help="Only these tables (shell patterns, schema.name allowed; repeatable).")
@click.option("--exclude-tables", "-T", multiple=True, help="Skip these tables (patterns).")
@click.option("--level", type=click.IntRange(1, 19), default=3, show_default=True,
              help="zstd compression level.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--progress-json", is_flag=True, hidden=True)
def backup(
    database_url: str | None,
    env_file: Path | None,
    output: Path,
    jobs: int,
    tables: tuple[str, ...],
    exclude_tables: tuple[str, ...],
    level: int,
    as_json: bool,
    progress_json: bool,
) -> None:
    """Take a consistent backup of the database into one file."""
    from .engine.backup import backup as run_backup
    from .engine.backup import default_backup_name
    from .progress_ui import progress_reporter

    url = _db_url(database_url, env_file)
    target = output / default_backup_name(url.database) if _is_dir_target(output) else output
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with progress_reporter(json_lines=progress_json) as progress:
        result = run_async(
            run_backup(
                url, target, jobs=jobs, tables=tables or None,
                exclude_tables=exclude_tables or None, progress=progress, level=level,
            )
        )
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(result.path)
    click.echo(
        f"{len(result.tables)} tables, {result.total_rows} rows, {_size(result.size_bytes)}, "
        f"alembic {result.alembic_revision or '-'}, {result.duration_s:.1f}s",
        err=True,
    )


def _is_dir_target(output: Path) -> bool:
    return output.is_dir() or str(output).endswith("/")


# --- restore -------------------------------------------------------------------------------

@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@database_options
@click.option("--mode", type=click.Choice(["create", "replace", "data-only"]), default="create",
              show_default=True,
              help="create: into an empty database; replace: make the database equal to the "
              "backup; data-only: keep the schema, reload the data.")
@click.option("--tables", "-t", multiple=True, help="Restore only these tables (data-only).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Load even when alembic revisions or extra columns differ (data-only).")
@click.option("--lock-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for table locks before giving up.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--progress-json", is_flag=True, hidden=True)
def restore(
    file: Path,
    database_url: str | None,
    env_file: Path | None,
    mode: str,
    tables: tuple[str, ...],
    yes: bool,
    force: bool,
    lock_timeout: float,
    as_json: bool,
    progress_json: bool,
) -> None:
    """Restore FILE (a .mmops backup, an old JSON backup or a plain SQL dump) atomically."""
    from .engine.restore import restore as run_restore
    from .engine.results import RestoreMode
    from .progress_ui import progress_reporter

    url = _db_url(database_url, env_file)
    foreign = _foreign_restore(file)
    if foreign is not None and (tables or mode != "create"):
        from .errors import UsageError

        raise UsageError(
            f"{file.name} is an old JSON backup or a SQL dump: --tables and --mode apply to "
            ".mmops backups only."
        )
    if foreign is not None:
        _confirm_foreign(file, url.database, yes)
        with progress_reporter(json_lines=progress_json) as progress:
            summary = run_async(foreign(url, file, lock_timeout=lock_timeout, force=force,
                                        progress=progress))
        if as_json:
            _echo_json(summary)
        else:
            click.echo(f"restored {file} into {url.database}: {summary.get('total_rows', 0)} rows")
        return

    def confirm(plan):
        return _confirm_plan(plan, yes, quiet=as_json)

    with progress_reporter(json_lines=progress_json) as progress:
        result = run_async(
            run_restore(
                url, file, mode=RestoreMode(mode), lock_timeout=lock_timeout, force=force,
                tables=tables or None, confirm=confirm, progress=progress,
            )
        )
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(
        f"restored {file} into {result.database} ({result.mode.value}): "
        f"{len(result.tables)} tables, {result.total_rows} rows in {result.duration_s:.1f}s"
    )
    for w in result.plan.warnings:
        click.echo(f"warning: {w}", err=True)


def _confirm_plan(plan, yes: bool, *, quiet: bool) -> bool:
    from .engine.results import RestoreMode

    destructive = plan.mode is not RestoreMode.CREATE
    if not quiet or not yes:
        out = sys.stderr
        print(f"restore into database {plan.database!r} ({plan.mode.value})", file=out)
        print(f"  backup taken {plan.backup_created_at}, alembic "
              f"{plan.backup_alembic_revision or '-'} (live: {plan.live_alembic_revision or '-'})",
              file=out)
        print(f"  loads {len(plan.tables_to_load)} tables, {plan.rows_to_load} rows", file=out)
        if plan.objects_to_drop:
            print(f"  drops {len(plan.objects_to_drop)} objects:", file=out)
            for obj in plan.objects_to_drop[:50]:
                print(f"    {obj}", file=out)
            if len(plan.objects_to_drop) > 50:
                print(f"    … and {len(plan.objects_to_drop) - 50} more", file=out)
        if plan.live_rows_replaced:
            print(f"  replaces {plan.live_rows_replaced} live rows", file=out)
        for w in plan.warnings:
            print(f"  warning: {w}", file=out)
    if not destructive or yes:
        return True
    return _typed_database_name(plan.database, "This restore")


def _confirm_foreign(file: Path, database: str, yes: bool) -> None:
    from .errors import RestoreRefused

    if yes:
        return
    if not _typed_database_name(database, f"Restoring {file.name}"):
        raise RestoreRefused("Restore cancelled; nothing was changed.")


def _typed_database_name(database: str, what: str) -> bool:
    """Ask the operator to type the database name; refuse when there is no terminal to ask."""
    from .errors import RestoreRefused

    if not sys.stdin.isatty():
        raise RestoreRefused(
            f"{what} replaces data in {database!r}; pass --yes to confirm "
            "when not running interactively."
        )
    answer = click.prompt(f"Type the database name ({database}) to continue", default="",
                          show_default=False, err=True)
    return bool(answer.strip() == database)


def _foreign_restore(file: Path):
    """The restore function for an old JSON backup or a plain SQL dump, else None."""
    try:
        from .engine import foreign
    except ImportError:  # pragma: no cover - interoperability not installed
        return None
    return foreign.restorer_for(file)


# --- export --------------------------------------------------------------------------------

@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["sql"]), default="sql", show_default=True,
              help="Output format: a plain SQL script for psql.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: FILE with a .sql suffix).")
def export(file: Path, fmt: str, output: Path | None) -> None:
    """Write a backup as a plain SQL script that `psql -v ON_ERROR_STOP=1 -f` restores."""
    from .engine.sql_export import export_sql

    target = output or file.with_suffix(".sql")
    result = export_sql(file, target)
    click.echo(result.path)
    click.echo(f"{result.tables} tables, {result.rows} rows, {_size(result.bytes_written)}",
               err=True)


# --- verify / inspect ----------------------------------------------------------------------

@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report on stdout.")
def verify(file: Path, as_json: bool) -> None:
    """Re-check every checksum and the structure of a backup file."""
    from dataclasses import asdict

    from .archive import verify_archive

    report = verify_archive(file)
    if as_json:
        _echo_json(asdict(report))
    else:
        click.echo(f"OK {file}: {report.members} members, {_size(report.raw_bytes)} of data "
                   f"({_size(report.stored_bytes)} stored), every checksum matches")


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(file: Path, as_json: bool) -> None:
    """Print a backup's manifest (fast: reads no table data)."""
    from .archive import read_manifest

    manifest = read_manifest(file)
    if as_json:
        _echo_json(manifest)
        return
    click.echo(f"file:      {file}")
    click.echo(
        f"database:  {manifest.get('database')}  (PostgreSQL {manifest.get('server_version')})"
    )
    click.echo(f"created:   {manifest.get('created_at')}  by mmops {manifest.get('tool_version')}")
    click.echo(f"alembic:   {manifest.get('alembic_revision') or '-'}")
    tables = manifest.get("tables", [])
    click.echo(f"tables:    {len(tables)}, {sum(t['rows'] for t in tables)} rows")
    for t in tables:
        click.echo(f"  {t['schema']}.{t['name']:<40} {t['rows']:>12} rows  "
                   f"{_size(t['stored_bytes']):>10}")


def run() -> None:  # pragma: no cover - console entry for `python -m ops.cli`
    sys.exit(main())


from .cli_sandbox import sandbox  # noqa: E402

main.add_command(sandbox)

from .cli_remote import remote  # noqa: E402

main.add_command(remote)

from .cli_tunnel import tunnel  # noqa: E402

main.add_command(tunnel)
