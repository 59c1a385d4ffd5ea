"""What every command group shares: error → exit code, JSON output, sizes, option parsing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from ..errors import Interrupted, OpsError


class OpsGroup(click.Group):
    """Maps our exception tree to one clear sentence on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            # Jobs turn an interruption into an Interrupted that says what state things are
            # in; one that reaches here claims nothing it cannot know.
            click.echo("interrupted.", err=True)
            ctx.exit(Interrupted.exit_code)


def echo_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def notice(text: str) -> None:
    click.echo(text, err=True)


def human_size(n: float) -> str:
    """Bytes in binary units (B, KiB, MiB, GiB, TiB): the one unit system every size and
    progress bar the CLI shows uses."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{int(n)} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def count(n: int, word: str, plural: str | None = None) -> str:
    """``1 table``, ``2 tables``, ``12,345 rows``: thousands separated, the noun agreeing."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def split_patterns(values: Iterable[str] | str | None) -> list[str]:
    """``-t a -t b``, ``TABLES="a b"`` and ``TABLES=a,b`` all mean the same."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [p for v in values for p in re.split(r"[,\s]+", v) if p]


def restore_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The restore options every mode offers, with the same names, defaults and Make vars."""
    options = [
        click.option("--mode", type=click.Choice(["auto", "create", "replace", "data-only"]),
                     default="auto", show_default=True,
                     help="auto: replace a database that has tables, create into an empty one, "
                     "data-only with --tables."),
        click.option("--tables", "-t", multiple=True, envvar="TABLES",
                     help="Restore only these tables from a .mmops backup (data-only, into "
                     "the existing schema; patterns, comma/space separated)."),
        click.option("--with-dependents", is_flag=True, envvar="WITH_DEPENDENTS",
                     help="With --tables: also restore every table that references them "
                     "through a foreign key (directly or through another table); the plan "
                     "lists them."),
        click.option("--yes", "-y", is_flag=True, envvar="YES",
                     help="Do not ask to type the database name (automation)."),
        click.option("--force", is_flag=True, envvar="FORCE",
                     help="Restore despite a refusal the plan shows (another database's "
                     "backup, differing alembic revisions, missing tables)."),
        click.option("--no-owner", is_flag=True, envvar="NO_OWNER",
                     help="Like pg_restore --no-owner: the restored objects belong to the "
                     "restoring user instead of the backup's owners."),
        click.option("--no-privileges", is_flag=True, envvar="NO_PRIVILEGES",
                     help="Like pg_restore --no-privileges: the backup's GRANTs and default "
                     "privileges are not restored."),
        click.option("--lock-timeout", type=float, default=30.0, show_default=True,
                     help="Seconds to wait for table locks before giving up."),
        click.option("--keep-safety", type=click.IntRange(1, 1000), default=5,
                     show_default=True, help="Safety backups of this database to keep."),
        click.option("--backup-dir", envvar="BACKUP_DIR", default=Path("backups"),
                     show_default=True, type=click.Path(path_type=Path, file_okay=False),
                     help="Local backup directory (BACKUP=latest looks here; safety/ below "
                     "it for direct and tunnel modes)."),
        click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
                     help="Parallel connections for the safety backup."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
        click.option("--progress-json", is_flag=True, hidden=True),
        click.option("--repo", envvar=["REPO", "MMOPS_REPO"],
                     help="Where BACKUP=latest / BACKUP=NAME are looked up: a directory, "
                     "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX [default: BACKUP_DIR]."),
        click.option("--identity", envvar="AGE_IDENTITY",
                     help="age identity file that opens .mmops.age backups (stays here)."),
        click.option("--from-database", envvar="FROM_DATABASE", metavar="NAME",
                     help="Restore the newest backup of database NAME (FILE may be omitted or "
                     "`latest`), e.g. production's into staging; over live data only with "
                     "--force."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def publish_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where a backup goes besides BACKUP_DIR, and how it treats the application's locks —
    the same in every mode (Make vars alike)."""
    options = [
        click.option("--yield-after", envvar="YIELD_AFTER", type=click.FloatRange(0),
                     default=5.0, show_default=True,
                     help="Seconds another session may wait behind the backup's table locks "
                     "(e.g. a migration's ALTER TABLE) before the backup gives way and stops "
                     "(exit 13, retry later); 0 = never."),
        click.option("--backup-lock-timeout", "backup_lock_timeout", envvar="LOCK_TIMEOUT",
                     type=click.FloatRange(0), default=30.0, show_default=True,
                     help="Seconds the backup waits for a table lock someone else holds."),
        click.option("--repo", envvar=["REPO", "MMOPS_REPO"],
                     help="Repository: a directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX "
                     "(credentials from the AWS_* / GOOGLE_* environment) [default: "
                     "BACKUP_DIR]."),
        click.option("--encrypt-to", envvar="ENCRYPT_TO",
                     help="age recipient(s) (age1…, ssh-ed25519 …) or a recipients file: the "
                     "backup is stored as NAME.mmops.age; only public keys are needed."),
        click.option("--lock-days", envvar="LOCK_DAYS", type=click.IntRange(1, 36500),
                     help="S3 Object Lock retention for the uploaded backup."),
        click.option("--keep", envvar="KEEP",
                     help='Retention after the backup, e.g. "daily=7 weekly=4 monthly=12".'),
        click.option("--keep-local", envvar="KEEP_LOCAL", is_flag=True,
                     help="Also keep the plain file in BACKUP_DIR when storing elsewhere."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def publish_request(
    repo: str | None, encrypt_to: str | None, lock_days: int | None, keep: str | None,
    keep_local: bool, *, default_repo: Path, repo_env_file: str | None = None,
) -> Any:
    """The PublishRequest of the options above, or None when the backup simply stays in
    BACKUP_DIR. Storage settings of this environment go along (the agent needs them)."""
    import os

    from ..steps.publish import STORAGE_ENV, PublishRequest

    if not (repo or encrypt_to or lock_days or keep):
        return None
    if repo:
        from ..repository import check_repository_spec

        check_repository_spec(repo)  # before the backup runs, not after
    if encrypt_to:
        from ..crypto.age import parse_recipients

        parse_recipients(encrypt_to)
    return PublishRequest(
        repo=repo or str(default_repo), encrypt_to=encrypt_to or None, lock_days=lock_days,
        keep=keep or None, keep_local=keep_local, repo_env_file=repo_env_file or None,
        storage_env={k: os.environ[k] for k in STORAGE_ENV if os.environ.get(k)},
    )
