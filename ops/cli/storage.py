"""``mmops key generate`` and ``mmops repo list|prune``: age keys and the backup repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..repository.base import BackupName, Entry, Repository
from .common import echo_json, human_size
from .shared import SharedOptions


@click.group()
def key() -> None:
    """age keys for encrypted backups."""


@key.command("generate")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("mmops-age-key.txt"), show_default=True,
              help="Where to write the identity (created 0600; never overwritten).")
def key_generate(output: Path) -> None:
    """Write a new age identity and print its public recipient (give that to ENCRYPT_TO)."""
    from ..crypto.age import generate_identity

    recipient = generate_identity(output)
    click.echo(recipient)
    click.echo(f"identity written to {output} (0600): keep it off the servers; restores need it "
               "as AGE_IDENTITY.", err=True)


REPO = SharedOptions(click.option(
    "--repo", envvar=["REPO", "MMOPS_REPO"], default="backups", show_default=True,
    show_envvar=True, help="A directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX."))


@click.group()
@REPO.group
def repo() -> None:
    """The backup repository: list and prune (credentials from the AWS_* / GOOGLE_* env).
    --repo works before or after the subcommand."""


def _open(spec: str) -> Repository:
    from ..repository import open_repository

    return open_repository(spec)


def _describe(store: Repository, entry: Entry, info: BackupName) -> dict[str, Any]:
    """What a listing shows of one backup (steps.publish.describe_stored: sidecar or manifest,
    never a download or a decryption)."""
    from ..steps.publish import describe_stored

    facts = describe_stored(store, entry.name)
    return {"name": entry.name, "size": entry.size, "database": info.database,
            "created_at": info.created_at.isoformat(), "encrypted": info.encrypted,
            "safety": info.safety,
            "kind": "safety" if info.safety else (facts.kind if facts else "?"),
            "alembic_revision": facts.alembic_revision if facts else None}


@repo.command("list")
@click.option("--database", help="Only this database's backups.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@REPO.command
def repo_list(repo: str, database: str | None, as_json: bool) -> None:
    """Every backup in the repository, oldest first, by each backup's own timestamp: database,
    UTC time, size, kind (full / tables / safety), alembic revision, encrypted."""
    from ..repository.base import backups

    store = _open(repo)
    rows = [_describe(store, e, info) for e, info in backups(store, database=database)]
    if as_json:
        echo_json({"repository": store.url, "backups": rows})
        return
    for r in rows:
        click.echo(f"{r['created_at'][:19].replace('T', ' ')}Z  {r['database']:<20} "
                   f"{human_size(r['size']):>10}  {r['kind']:<6} "
                   f"{r['alembic_revision'] or '-':<28} {'age ' if r['encrypted'] else ''}"
                   f"{r['name']}")
    click.echo(f"{len(rows)} backups in {store.url}", err=True)


@repo.command("prune")
@click.option("--database", required=True, help="The database whose backups to prune.")
@click.option("--keep", envvar="KEEP",
              help='Retention rules, e.g. "daily=7 weekly=4 monthly=12".')
@click.option("--keep-last", type=click.IntRange(0), help="Keep the N newest.")
@click.option("--keep-hourly", type=click.IntRange(0), help="Keep the newest of each of the "
              "last N hours.")
@click.option("--keep-daily", type=click.IntRange(0), help="Keep the newest of each of the "
              "last N days.")
@click.option("--keep-weekly", type=click.IntRange(0), help="Keep the newest of each of the "
              "last N weeks.")
@click.option("--keep-monthly", type=click.IntRange(0), help="Keep the newest of each of the "
              "last N months.")
@click.option("--keep-yearly", type=click.IntRange(0), help="Keep the newest of each of the "
              "last N years.")
@click.option("--keep-within", help="Keep all within this of the newest (e.g. 2d, 12h, 1w).")
@click.option("--dry-run", is_flag=True, help="Show what would go and why; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was (or would be) deleted "
              "and kept as JSON on stdout.")
@REPO.command
def repo_prune(
    repo: str, database: str, keep: str | None, keep_last: int | None,
    keep_hourly: int | None, keep_daily: int | None, keep_weekly: int | None,
    keep_monthly: int | None, keep_yearly: int | None, keep_within: str | None, dry_run: bool,
    as_json: bool,
) -> None:
    """Apply retention to one database's backups (its newest is always kept; safety backups
    and other databases are never touched)."""
    flags = {"last": keep_last, "hourly": keep_hourly, "daily": keep_daily,
             "weekly": keep_weekly, "monthly": keep_monthly, "yearly": keep_yearly,
             "within": keep_within}
    spec = " ".join([keep or ""] + [f"{k}={v}" for k, v in flags.items() if v is not None])
    if not spec.strip():
        from ..errors import UsageError

        raise UsageError("Give retention rules: --keep \"daily=7 weekly=4\" or --keep-daily 7 …")
    keep = spec.strip()
    from ..errors import OpsError
    from ..policy.keep_spec import parse_keep
    from ..policy.retention import plan_retention
    from ..repository.base import backups
    from ..steps.publish import prune

    store = _open(repo)
    if dry_run:
        found = backups(store, database=database, safety=False)
        plan = plan_retention([(e.name, i.created_at) for e, i in found], **parse_keep(keep))
        if as_json:
            echo_json({"repository": store.url, "database": database, "keep": keep,
                       "dry_run": True,
                       "decisions": [{"name": d.name, "keep": d.keep, "reasons": list(d.reasons)}
                                     for d in plan.decisions]})
            return
        for d in plan.decisions:
            click.echo(f"{'keep  ' if d.keep else 'delete'} {d.name}  "
                       f"{', '.join(d.reasons)}".rstrip())
        return
    deleted, locked = prune(store, database, keep)
    if as_json:
        echo_json({"repository": store.url, "database": database, "keep": keep,
                   "dry_run": False, "deleted": list(deleted), "locked": list(locked)})
    else:
        for name in deleted:
            click.echo(f"deleted {name}")
    for why in locked:
        click.echo(f"warning: not deleted: {why}", err=True)
    if locked:
        raise OpsError(f"{len(locked)} backup(s) could not be deleted (locked); see above.")
