"""Which backups a prune keeps: a pure function over (name, created_at) pairs.

The rules follow borg's ``prune_split`` (``src/borg/archiver/prune_cmd.py``): for each rule in
the order keep-within, last, hourly, daily, weekly, monthly, yearly, walk the backups newest
first and keep the newest backup of each period (hour, UTC day, ISO week, month, year) until
the rule's count is reached; a backup already kept by an earlier rule does not use up a slot of
a later one, and when a rule runs out of backups before its count, it keeps the oldest one
too. Periods come from each backup's own UTC timestamp (from its name), never from file
times, and ``within`` is counted back from the newest backup, not from now, so a pause in
backups never makes a prune delete more.

Floors (invariant 9): each database's newest backup is always kept, so a prune can never leave
a database without a backup, even while new backups are failing. Backups are grouped per
database, and safety backups (``safety-…``) form their own group. Names that are not backups
are never selected for deletion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ops.errors import UsageError
from ops.repository.base import parse_backup_name

Backup = tuple[str, dt.datetime]

# Rule name -> the period a timestamp falls in. "last" gives every backup its own period.
_PERIODS: dict[str, Callable[[dt.datetime], object]] = {
    "last": lambda ts: ts,
    "hourly": lambda ts: (ts.year, ts.month, ts.day, ts.hour),
    "daily": lambda ts: (ts.year, ts.month, ts.day),
    "weekly": lambda ts: ts.isocalendar()[:2],
    "monthly": lambda ts: (ts.year, ts.month),
    "yearly": lambda ts: ts.year,
}


@dataclass(frozen=True)
class Decision:
    """One backup's fate and why: reasons like ``daily #3``, ``monthly #2 (oldest)``,
    ``within 7 days, 0:00:00 of the newest``, ``newest of its database``."""

    name: str
    created_at: dt.datetime
    keep: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RetentionPlan:
    keep: list[Backup]  # newest first
    delete: list[Backup]  # newest first
    decisions: list[Decision]  # every input backup, newest first


def _utc(ts: dt.datetime) -> dt.datetime:
    """Naive timestamps are taken as UTC (backup names are UTC)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=dt.timezone.utc)
    return ts.astimezone(dt.timezone.utc)


def _group(name: str) -> tuple[str, bool] | None:
    info = parse_backup_name(name)
    return None if info is None else (info.database, info.safety)


def plan_retention(
    backups: Iterable[Backup],
    *,
    keep_last: int = 0,
    hourly: int = 0,
    daily: int = 0,
    weekly: int = 0,
    monthly: int = 0,
    yearly: int = 0,
    within: dt.timedelta | None = None,
) -> RetentionPlan:
    """Decide, per database, which backups to keep and which to delete, with reasons."""
    counts = {
        "last": keep_last, "hourly": hourly, "daily": daily,
        "weekly": weekly, "monthly": monthly, "yearly": yearly,
    }
    if any(n < 0 for n in counts.values()) or (within is not None and within < dt.timedelta(0)):
        raise UsageError("Retention counts and durations cannot be negative.")
    if not any(counts.values()) and not within:
        raise UsageError(
            "Give at least one retention rule (keep-last, hourly, daily, weekly, monthly, "
            "yearly or within); without one a prune would keep only the newest backup."
        )
    ordered = sorted(((name, _utc(ts)) for name, ts in backups),
                     key=lambda b: (b[1], b[0]), reverse=True)
    reasons: dict[str, list[str]] = {name: [] for name, _ in ordered}
    groups: dict[tuple[str, bool], list[Backup]] = {}
    for name, ts in ordered:
        key = _group(name)
        if key is None:
            reasons[name].append("not a backup name")
        else:
            groups.setdefault(key, []).append((name, ts))

    for members in groups.values():  # each newest first
        kept: set[str] = set()
        newest_name, newest_ts = members[0]
        reasons[newest_name].append("newest of its database")
        kept.add(newest_name)
        if within:
            for name, ts in members:
                if newest_ts - ts <= within:
                    reasons[name].append(f"within {within} of the newest")
                    kept.add(name)
        for rule, count in counts.items():
            _split(members, rule, count, kept, reasons)

    decisions = [
        Decision(name, ts, bool(reasons[name]), tuple(reasons[name])) for name, ts in ordered
    ]
    return RetentionPlan(
        keep=[(d.name, d.created_at) for d in decisions if d.keep],
        delete=[(d.name, d.created_at) for d in decisions if not d.keep],
        decisions=decisions,
    )


def _split(
    members: list[Backup], rule: str, count: int, kept: set[str], reasons: dict[str, list[str]]
) -> None:
    """borg's prune_split: the newest backup of each of the ``count`` newest periods."""
    if count <= 0:
        return
    period_of = _PERIODS[rule]
    taken = 0
    last_period: object = None
    for name, ts in members:
        period = period_of(ts)
        if period == last_period:
            continue
        last_period = period
        if name in kept and not _kept_only_as_floor(name, reasons):
            continue
        taken += 1
        reasons[name].append(f"{rule} #{taken}")
        kept.add(name)
        if taken == count:
            return
    oldest_name = members[-1][0]
    if taken < count and oldest_name not in kept:
        reasons[oldest_name].append(f"{rule} #{taken + 1} (oldest)")
        kept.add(oldest_name)


def _kept_only_as_floor(name: str, reasons: dict[str, list[str]]) -> bool:
    """The newest backup counts for the rules too (as in borg, where it is simply the first
    of every rule); only keeping by an earlier *rule* makes a later rule skip it."""
    return reasons[name] == ["newest of its database"]


def select_to_keep(
    backups: Iterable[Backup],
    *,
    keep_last: int = 0,
    hourly: int = 0,
    daily: int = 0,
    weekly: int = 0,
    monthly: int = 0,
    yearly: int = 0,
    within: dt.timedelta | None = None,
) -> tuple[list[Backup], list[Backup]]:
    """``(keep, delete)``, newest first; see :func:`plan_retention` for the reasons."""
    plan = plan_retention(
        backups, keep_last=keep_last, hourly=hourly, daily=daily, weekly=weekly,
        monthly=monthly, yearly=yearly, within=within,
    )
    return plan.keep, plan.delete


__all__ = ["Decision", "RetentionPlan", "plan_retention", "select_to_keep"]
