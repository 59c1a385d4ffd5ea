"""``mmops backup | restore | verify | inspect | export``: the engine in this process, the
database at DATABASE_URL (direct mode). Parse → call a job → render."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..steps.results import BackupRequest
from .common import (
    count,
    echo_json,
    human_size,
    publish_options,
    publish_request,
    restore_options,
    split_patterns,
)
from .flows import backup_command, restore_command


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


def _direct(database_url: str | None, env_file: Path | None, safety_dir: Path) -> Callable[
        [], contextlib.AbstractContextManager[Any]]:
    from ..dburl import resolve_database_url
    from ..transport.direct import DirectTransport

    url = resolve_database_url(database_url=database_url, env_file=env_file)

    @contextlib.contextmanager
    def open_transport() -> Iterator[DirectTransport]:
        yield DirectTransport(url, safety_dir)

    return open_transport


@click.command()
@database_options
@click.option("-o", "--output", type=click.Path(), default=".",
              show_default=True, help="The file to write (like pg_dump -f), or an existing "
              "directory (or a path ending in /) to write <db>-<UTC>.mmops into. With --repo, "
              "--encrypt-to or --keep: the local directory the backup is staged in (the stored "
              "name is always <db>-<UTC>.mmops), unless it ends in .mmops.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Parallel connections reading one consistent snapshot.")
@click.option("--tables", "-t", multiple=True,
              help="Only these tables (shell patterns, schema.name allowed; repeatable).")
@click.option("--exclude-tables", "-T", multiple=True, help="Skip these tables (patterns).")
@click.option("--level", type=click.IntRange(1, 19), default=3, show_default=True,
              help="zstd compression level.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--progress-json", is_flag=True, hidden=True)
@publish_options
def backup(
    database_url: str | None, env_file: Path | None, output: str, jobs: int,
    tables: tuple[str, ...], exclude_tables: tuple[str, ...], level: int, as_json: bool,
    progress_json: bool, repo: str | None, encrypt_to: str | None, lock_days: int | None,
    keep: str | None, keep_local: bool, yield_after: float, backup_lock_timeout: float,
) -> None:
    """Take a consistent backup of the database into one verified file (and store it in the
    repository, encrypted, with retention, when asked)."""
    publishing = bool(repo or encrypt_to or lock_days or keep)
    out = Path(output)  # a Path forgets a trailing "/", which says "a directory"
    if output.endswith(("/", os.sep)) or out.is_dir() or (publishing and out.suffix != ".mmops"):
        dest, name = out, None
    else:
        dest, name = out.parent, out.name
    # An explicit -o is a local copy asked for: with --repo the plain file stays exactly there
    # (else it is staged in a private dir under $TMPDIR only).
    source = click.get_current_context().get_parameter_source("output")
    keep_local = keep_local or source is click.core.ParameterSource.COMMANDLINE
    request = BackupRequest(jobs=jobs, tables=split_patterns(tables),
                            exclude_tables=split_patterns(exclude_tables), yield_after=yield_after,
                            lock_timeout=backup_lock_timeout, level=level,
                            name=name,
                            publish=publish_request(repo, encrypt_to, lock_days, keep,
                                                    keep_local, default_repo=dest))
    backup_command(_direct(database_url, env_file, dest / "safety"), dest, request,
                   as_json=as_json, progress_json=progress_json, phases=False)


@click.command()
@click.argument("backup", metavar="[FILE]", required=False)
@database_options
@restore_options
def restore(
    backup: str | None, database_url: str | None, env_file: Path | None, mode: str,
    tables: tuple[str, ...], yes: bool, force: bool,
    no_owner: bool, no_privileges: bool, lock_timeout: float, keep_safety: int,
    backup_dir: Path, jobs: int, as_json: bool, progress_json: bool, repo: str | None,
    identity: str | None, from_database: str | None, with_dependents: bool,
) -> None:
    """Restore FILE (a .mmops backup or `latest`, an old JSON backup or a plain SQL dump)
    atomically: plan, typed confirmation when data is replaced, safety backup, restore."""
    restore_command(
        _direct(database_url, env_file, backup_dir / "safety"), backup, backup_dir=backup_dir,
        mode=mode, tables=tables, yes=yes, force=force,
        no_owner=no_owner, no_privileges=no_privileges, lock_timeout=lock_timeout,
        keep_safety=keep_safety, jobs=jobs, as_json=as_json, progress_json=progress_json,
        phases=False, repo=repo, identity=identity, from_database=from_database,
        with_dependents=with_dependents,
    )


# --- export --------------------------------------------------------------------------------

@click.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["sql"]), default="sql", show_default=True,
              help="Output format: a plain SQL script for psql.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: FILE with a .sql suffix).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the path, tables, rows and bytes written as JSON on stdout.")
def export(file: Path, fmt: str, output: Path | None, as_json: bool) -> None:
    """Write a backup as a plain SQL script that `psql -v ON_ERROR_STOP=1 -f` restores."""
    from ..interop.sql_export import export_sql

    target = output or file.with_suffix(".sql")
    result = export_sql(file, target)
    if as_json:
        echo_json({"path": str(result.path), "tables": result.tables, "rows": result.rows,
                   "bytes_written": result.bytes_written})
        return
    click.echo(result.path)
    click.echo(f"{count(result.tables, 'table')}, {count(result.rows, 'row')}, "
               f"{human_size(result.bytes_written)}", err=True)


# --- verify / inspect ----------------------------------------------------------------------

@click.command()
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report on stdout.")
@click.option("--restore-test", is_flag=True,
              help="Also restore it into a throwaway PostgreSQL (or --scratch-url) and prove "
              "every table's rows and data, the sequences and the alembic revision.")
@click.option("--repo", envvar=["REPO", "MMOPS_REPO"],
              help="With --restore-test: FILE is NAME or `latest` in this repository.")
@click.option("--database", help="With --repo ... latest: the newest backup of this database.")
@click.option("--identity", envvar="AGE_IDENTITY",
              help="age identity file that opens .mmops.age backups (decrypted into a private "
              "temporary directory, removed afterwards).")
@click.option("--scratch-url", envvar="SCRATCH_DATABASE_URL",
              help="Restore into this database instead (it is DROPPED and recreated; prefer "
              "the SCRATCH_DATABASE_URL variable: a URL here is visible in the process list).")
def verify(file: str, as_json: bool, restore_test: bool, repo: str | None,
           database: str | None, identity: str | None, scratch_url: str | None) -> None:
    """Re-check every checksum and the structure of a backup file (with --restore-test: prove
    it restores to identical data)."""
    from dataclasses import asdict

    from ..archive import verify_archive
    from ..jobs.read_backup import readable_backup

    if restore_test:
        from .restore_test import restore_test_command

        restore_test_command(file, repo=repo, database=database, identity=identity,
                             scratch_url=scratch_url, as_json=as_json)
        return
    with readable_backup(file, identity) as source:
        report = verify_archive(source)
    if as_json:
        echo_json(asdict(report))
    else:
        click.echo(f"OK {file}: {count(report.members, 'member')}, "
                   f"{human_size(report.raw_bytes)} of data "
                   f"({human_size(report.stored_bytes)} stored), every checksum matches")


@click.command()
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--identity", envvar="AGE_IDENTITY",
              help="age identity file that opens a .mmops.age backup to read its manifest; "
              "without it, what the backup's clear-text sidecar (NAME.meta.json) says.")
def inspect(file: str, as_json: bool, identity: str | None) -> None:
    """Print a backup's manifest (fast: reads no table data). FILE may be an s3:// or gs://
    object URL."""
    from ..archive import read_manifest
    from ..jobs.read_backup import readable_backup

    if file.endswith(".age") and not identity:
        _inspect_sidecar(file, as_json)
        return
    with readable_backup(file, identity) as source:
        manifest = read_manifest(source)
    if as_json:
        echo_json(manifest)
        return
    click.echo(f"file:      {file}" + ("  (age-encrypted, opened with the identity)"
                                          if file.endswith(".age") else ""))
    click.echo(
        f"database:  {manifest.get('database')}  (PostgreSQL {manifest.get('server_version')})"
    )
    click.echo(f"created:   {manifest.get('created_at')}  by mmops {manifest.get('tool_version')}")
    click.echo(f"alembic:   {manifest.get('alembic_revision') or '-'}")
    tables = manifest.get("tables", [])
    click.echo(f"tables:    {len(tables):,}, {count(sum(t['rows'] for t in tables), 'row')}")
    for t in tables:
        click.echo(f"  {t['schema']}.{t['name']:<40} {count(t['rows'], 'row'):>17}  "
                   f"{human_size(t['stored_bytes']):>10}")




def _inspect_sidecar(file: str, as_json: bool) -> None:
    """An encrypted backup without the identity: what its clear-text sidecar says."""
    from ..errors import UsageError
    from ..jobs.read_backup import sidecar

    meta = sidecar(file)
    if meta is None:
        raise UsageError(f"{file} is age-encrypted and has no sidecar ({Path(file).name}"
                         ".meta.json) beside it: pass --identity FILE (AGE_IDENTITY) to read "
                         "its manifest.")
    if as_json:
        echo_json({"file": file, "encrypted": True, "source": "sidecar", "sidecar": meta})
        return
    click.echo(f"file:      {file}  (age-encrypted: from its sidecar; --identity FILE shows "
               "the manifest)")
    click.echo(f"database:  {meta.get('database')}  (PostgreSQL {meta.get('server_version')})")
    click.echo(f"created:   {meta.get('created_at')}")
    click.echo(f"alembic:   {meta.get('alembic_revision') or '-'}")
    size = meta.get("size")
    click.echo(f"kind:      {meta.get('kind') or '?'}, "
               f"{human_size(size) if isinstance(size, int) else '? bytes'}")
    click.echo(f"tables:    {meta.get('tables', '?')}, {meta.get('rows', '?')} rows")
