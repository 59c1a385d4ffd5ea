"""``mmops key generate`` and ``mmops repo list|prune|check``: age keys and the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..repository.base import Repository
from ..repository.verified import StoredBackup, Unverified
from .check import NagiosCommand
from .common import count, echo_json, human_size
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


def _row(item: StoredBackup | Unverified) -> dict[str, Any]:
    """One listed backup (or a file named like one that does not count: ``verified`` false and
    the reason) — from sidecars or manifests, never a download or a decryption."""
    info = item.info
    good = isinstance(item, StoredBackup)
    return {"name": item.name, "size": item.entry.size, "database": info.database,
            "created_at": info.created_at.isoformat(), "encrypted": info.encrypted,
            "safety": info.safety, "verified": good,
            "kind": item.kind if isinstance(item, StoredBackup) else "damaged",
            "alembic_revision": item.alembic_revision if isinstance(item, StoredBackup) else None,
            "problem": None if isinstance(item, StoredBackup) else item.reason}


@repo.command("list")
@click.option("--database", help="Only this database's backups.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@REPO.command
def repo_list(repo: str, database: str | None, as_json: bool) -> None:
    """Every backup in the repository, oldest first, by each backup's own timestamp: database,
    UTC time, size, kind (full / tables / safety), alembic revision, encrypted. Files named
    like backups that do not count as one (no readable, consistent sidecar or manifest) are
    listed as damaged, with the reason, and are never chosen, counted or pruned."""
    from ..repository.verified import list_backups

    store = _open(repo)
    listing = list_backups(store, database=database)
    items: list[StoredBackup | Unverified] = [*listing.backups, *listing.unverified]
    items.sort(key=lambda i: (i.info.created_at, i.name))
    rows = [_row(i) for i in items]
    if as_json:
        echo_json({"repository": store.url, "backups": rows})
        return
    for r in rows:
        click.echo(f"{r['created_at'][:19].replace('T', ' ')}Z  {r['database']:<20} "
                   f"{human_size(r['size']):>10}  {r['kind']:<6} "
                   f"{r['alembic_revision'] or '-':<28} {'age ' if r['encrypted'] else ''}"
                   f"{r['name']}")
    for bad in listing.unverified:
        click.echo(f"warning: {bad.sentence()}; it is never counted, chosen or pruned.",
                   err=True)
    click.echo(f"{count(len(listing.backups), 'backup')} in {store.url}"
               + (f" ({len(listing.unverified)} damaged)" if listing.unverified else ""),
               err=True)


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
    from ..repository.verified import list_backups
    from ..steps.publish import prune

    store = _open(repo)
    if dry_run:
        listing = list_backups(store, database=database, safety=False)
        plan = plan_retention([(b.name, b.info.created_at) for b in listing.backups],
                              **parse_keep(keep))
        if as_json:
            echo_json({"repository": store.url, "database": database, "keep": keep,
                       "dry_run": True,
                       "decisions": [{"name": d.name, "keep": d.keep, "reasons": list(d.reasons)}
                                     for d in plan.decisions],
                       "ignored": [{"name": b.name, "reason": b.reason}
                                   for b in listing.unverified]})
            return
        for d in plan.decisions:
            click.echo(f"{'keep  ' if d.keep else 'delete'} {d.name}  "
                       f"{', '.join(d.reasons)}".rstrip())
        for bad in listing.unverified:
            click.echo(f"ignore {bad.name}  not a verified backup: {bad.reason}")
        return
    deleted, locked, unverified = prune(store, database, keep)
    if as_json:
        echo_json({"repository": store.url, "database": database, "keep": keep,
                   "dry_run": False, "deleted": list(deleted), "locked": list(locked),
                   "ignored": [{"name": b.name, "reason": b.reason} for b in unverified]})
    else:
        for name in deleted:
            click.echo(f"deleted {name}")
    for bad in unverified:
        click.echo(f"warning: left alone: {bad.sentence()}.", err=True)
    for why in locked:
        click.echo(f"warning: not deleted: {why}", err=True)
    if locked:
        raise OpsError(f"{len(locked)} backup(s) could not be deleted (locked); see above.")


def _check_unknown(repo: str, reason: str, *, as_json: bool) -> None:
    from ..policy.repo_check import unknown

    result = unknown(repo, reason)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.line)
    click.get_current_context().exit(result.status)


class _RepoCheckCommand(NagiosCommand):
    """A usage error is UNKNOWN (exit 3) with the one status line, as for ``mmops check``."""

    usage_hint = "mmops repo check --help"

    def finish_unknown(self, reason: str, *, as_json: bool) -> None:
        _check_unknown("", reason, as_json=as_json)


@repo.command("check", cls=_RepoCheckCommand)
@click.option("--database", help="Only this database's backups.")
@click.option("--read-data", metavar="all|N%|N",
              help="Also read all, N percent or N of the backups in full and compare the "
              "sha256 of their stored bytes with their sidecars' (a deterministic-random "
              "sample, see --seed).")
@click.option("--seed", help="Chooses the --read-data sample: the same seed reads the same "
              "backups [default: today's UTC date, so daily runs cover different ones].")
@click.option("--identity", type=click.Path(dir_okay=False),
              help="age identity file: the encrypted backups --read-data reads are also "
              "decrypted (into a private temp dir) and verified as archives.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@REPO.command
def repo_check(repo: str, database: str | None, read_data: str | None, seed: str | None,
               identity: str | None, as_json: bool) -> None:
    """Prove the stored backups intact without restoring them (a Nagios/Icinga plugin: exit 0
    OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Every backup's object against its sidecar (name,
    size); with --read-data, objects read in full and their sha256 compared — encrypted ones
    without the identity. One status line, then one line per problem naming the object."""
    import datetime as dt

    from ..errors import OpsError
    from ..jobs.repo_check import check_repository
    from ..policy.repo_check import parse_read_data
    from ..repository import check_repository_spec

    try:
        spec = parse_read_data(read_data)
    except ValueError as exc:
        _check_unknown(repo, f"--read-data: {exc}", as_json=as_json)
        return
    if identity and spec.mode == "none":
        _check_unknown(repo, "--identity verifies the encrypted backups --read-data reads; "
                       "add --read-data all (or 10%, or a number)", as_json=as_json)
        return
    seed = seed or dt.datetime.now(dt.timezone.utc).date().isoformat()
    try:
        if check_repository_spec(repo) == "dir" and not Path(repo).expanduser().is_dir():
            _check_unknown(repo, f"{repo} is not a directory (not mounted? wrong REPO?)",
                           as_json=as_json)
            return
        identities = None
        if identity:
            from ..crypto.age import load_identities

            identities = load_identities(identity)
        result = check_repository(_open(repo), database=database, read_data=spec, seed=seed,
                                  identities=identities)
    except OpsError as exc:
        _check_unknown(repo, f"cannot check {repo}: {exc}", as_json=as_json)
        return
    except Exception as exc:  # a client library's own error: still one UNKNOWN line
        _check_unknown(repo, f"cannot check {repo}: {type(exc).__name__}", as_json=as_json)
        return
    if as_json:
        echo_json(result.to_dict())
    else:
        for line in result.lines:
            click.echo(line)
    click.get_current_context().exit(result.status)
