"""``mmops check``: "no successful backup in X hours" for cron and monitoring systems, in the
Nagios/Icinga plugin convention (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one status line
with perfdata on stdout). List the repository → the pure evaluation in policy/check.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from .common import echo_json


def _seconds(value: str | None, name: str) -> float | None:
    from ..policy.check import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        _finish_unknown(f"{name}: {exc}", as_json=False)
        raise AssertionError("unreachable") from exc


def _finish_unknown(reason: str, *, as_json: bool) -> None:
    from ..policy.check import unknown

    result = unknown(reason)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.line)
    click.get_current_context().exit(result.status)


class NagiosCommand(click.Command):
    """A usage error (unknown option, missing --repo, bad number) is UNKNOWN, exit 3, with the
    one status line — never click's exit 2, which a monitoring system reads as CRITICAL."""

    usage_hint = "mmops check --help"

    def finish_unknown(self, reason: str, *, as_json: bool) -> None:
        """Print the UNKNOWN status line for ``reason`` and exit 3."""
        _finish_unknown(reason, as_json=as_json)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        as_json = "--json" in args  # before parsing, which consumes args
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            self.finish_unknown(f"usage: {exc.format_message()} ({self.usage_hint})",
                                as_json=as_json)
            raise AssertionError("unreachable") from exc


@click.command("check", cls=NagiosCommand)
@click.option("--repo", envvar=["REPO", "MMOPS_REPO"], required=True,
              help="The repository to look in: a directory, s3://BUCKET/PREFIX or "
              "gs://BUCKET/PREFIX (credentials from the AWS_* / GOOGLE_* environment).")
@click.option("--database", help="Only this database's backups (default: every database "
              "the repository holds backups of).")
@click.option("--max-age", default="26h", show_default=True,
              help="CRITICAL when the newest backup is older (26h, 90m, 2d …).")
@click.option("--warn-age", help="WARNING when the newest backup is older than this.")
@click.option("--min-count", type=click.IntRange(0), default=1, show_default=True,
              help="CRITICAL with fewer backups of a database.")
@click.option("--warn-count", type=click.IntRange(0),
              help="WARNING with fewer backups of a database.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(repo: str, database: str | None, max_age: str, warn_age: str | None,
          min_count: int, warn_count: int | None, as_json: bool) -> None:
    """Exit 0/1/2/3 (OK/WARNING/CRITICAL/UNKNOWN) on the age and count of the newest backups,
    with one status line and perfdata (a Nagios/Icinga plugin)."""
    from ..errors import OpsError
    from ..policy.check import Thresholds, evaluate
    from ..repository import open_repository
    from ..repository.verified import list_backups

    crit_s = _seconds(max_age, "--max-age")
    assert crit_s is not None
    thresholds = Thresholds(max_age_s=crit_s, warn_age_s=_seconds(warn_age, "--warn-age"),
                            min_count=min_count, warn_count=warn_count)
    if "://" not in repo and not Path(repo).expanduser().is_dir():
        _finish_unknown(f"{repo} is not a directory (not mounted? wrong REPO?)", as_json=as_json)
        return
    try:
        store = open_repository(repo)
        listing = list_backups(store, safety=False)
        listed = [(b.name, b.info.database, b.info.created_at) for b in listing.backups]
        ignored = [u.name for u in listing.unverified]
    except OpsError as exc:
        _finish_unknown(f"cannot list {repo}: {exc}", as_json=as_json)
        return
    except Exception as exc:  # a client library's own error: still one UNKNOWN line
        _finish_unknown(f"cannot list {repo}: {type(exc).__name__}", as_json=as_json)
        return
    result = evaluate(listed, dt.datetime.now(dt.timezone.utc), thresholds,
                      database=database, repository=store.url, ignored=ignored)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.line)
    click.get_current_context().exit(result.status)
