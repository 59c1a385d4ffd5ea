"""``mmops key generate`` and ``mmops repo list|prune``: age keys and the backup repository."""

from __future__ import annotations

from pathlib import Path

import click

from .common import echo_json, human_size


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


@click.group()
@click.option("--repo", envvar=["REPO", "MMOPS_REPO"], default="backups", show_default=True,
              help="A directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")
@click.pass_context
def repo(ctx: click.Context, repo: str) -> None:
    """The backup repository: list and prune (credentials from the AWS_* / GOOGLE_* env)."""
    from ..repository import open_repository

    ctx.obj = open_repository(repo)


@repo.command("list")
@click.option("--database", help="Only this database's backups.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def repo_list(store: object, database: str | None, as_json: bool) -> None:
    """Every backup in the repository, oldest first, by each backup's own timestamp."""
    from ..repository.base import Repository, backups

    assert isinstance(store, Repository)
    found = backups(store, database=database)
    if as_json:
        echo_json({"repository": store.url, "backups": [
            {"name": e.name, "size": e.size, "database": info.database,
             "created_at": info.created_at.isoformat(), "encrypted": info.encrypted,
             "safety": info.safety} for e, info in found]})
        return
    for e, info in found:
        flags = ("age " if info.encrypted else "") + ("safety" if info.safety else "")
        click.echo(f"{info.created_at:%Y-%m-%d %H:%M:%S}Z  {info.database:<24} "
                   f"{human_size(e.size):>10}  {e.name}  {flags}".rstrip())
    click.echo(f"{len(found)} backups in {store.url}", err=True)


@repo.command("prune")
@click.option("--database", required=True, help="The database whose backups to prune.")
@click.option("--keep", envvar="KEEP", required=True,
              help='Retention rules, e.g. "daily=7 weekly=4 monthly=12".')
@click.option("--dry-run", is_flag=True, help="Show what would go; delete nothing.")
@click.pass_obj
def repo_prune(store: object, database: str, keep: str, dry_run: bool) -> None:
    """Apply retention to one database's backups (its newest is always kept)."""
    from ..errors import OpsError
    from ..policy.keep_spec import parse_keep
    from ..policy.retention import plan_retention
    from ..repository.base import Repository, backups
    from ..steps.publish import prune

    assert isinstance(store, Repository)
    if dry_run:
        found = backups(store, database=database, safety=False)
        plan = plan_retention([(e.name, i.created_at) for e, i in found], **parse_keep(keep))
        for d in plan.decisions:
            click.echo(f"{'keep  ' if d.keep else 'delete'} {d.name}  "
                       f"{', '.join(d.reasons)}".rstrip())
        return
    deleted, locked = prune(store, database, keep)
    for name in deleted:
        click.echo(f"deleted {name}")
    for why in locked:
        click.echo(f"warning: not deleted: {why}", err=True)
    if locked:
        raise OpsError(f"{len(locked)} backup(s) could not be deleted (locked); see above.")
