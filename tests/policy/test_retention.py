"""Retention selection on hand-built backup histories (borg prune_split semantics)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from ops.errors import UsageError
from ops.policy.retention import plan_retention, select_to_keep

UTC = dt.timezone.utc


def backup(ts: dt.datetime, db: str = "app", safety: bool = False) -> tuple[str, dt.datetime]:
    prefix = "safety-" if safety else ""
    return f"{prefix}{db}-{ts.strftime('%Y%m%dT%H%M%SZ')}.mmops", ts


def at(day: str, hour: int = 2) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def names(items: list[tuple[str, dt.datetime]]) -> list[str]:
    return [name for name, _ in items]


def test_keep_last_keeps_exactly_the_newest_n() -> None:
    history = [backup(at("2026-03-01") + dt.timedelta(hours=i)) for i in range(10)]
    keep, delete = select_to_keep(history, keep_last=3)
    assert names(keep) == names(history[::-1][:3])
    assert len(delete) == 7


def test_daily_keeps_the_last_backup_of_each_of_the_newest_days() -> None:
    # four backups a day (00, 06, 12, 18 UTC) for ten days, March 1..10
    history = [
        backup(at(f"2026-03-{day:02d}", hour)) for day in range(1, 11) for hour in (0, 6, 12, 18)
    ]
    keep, delete = select_to_keep(history, daily=7)
    assert names(keep) == [backup(at(f"2026-03-{d:02d}", 18))[0] for d in range(10, 3, -1)]
    assert len(keep) + len(delete) == 40


def test_a_backup_kept_by_daily_uses_no_weekly_slot() -> None:
    # one backup a day, Monday 2026-03-02 .. Sunday 2026-03-22 (three ISO weeks)
    history = [backup(at("2026-03-02") + dt.timedelta(days=i)) for i in range(21)]
    plan = plan_retention(history, daily=2, weekly=2)
    kept = {d.name[4:12]: d.reasons for d in plan.decisions if d.keep}
    assert kept == {
        "20260322": ("newest of its database", "daily #1"),
        "20260321": ("daily #2",),
        # week 12 (Mar 16-22) is represented by the daily #1 backup: weekly goes on to
        # the newest backups of weeks 11 and 10
        "20260315": ("weekly #1",),
        "20260308": ("weekly #2",),
    }


def test_a_rule_with_too_few_periods_also_keeps_the_oldest_backup() -> None:
    history = [backup(at(day)) for day in
               ["2026-01-05", "2026-01-20", "2026-02-10", "2026-03-01", "2026-03-15"]]
    plan = plan_retention(history, monthly=12)
    reasons = {d.name[4:12]: d.reasons for d in plan.decisions if d.keep}
    assert reasons == {
        "20260315": ("newest of its database", "monthly #1"),
        "20260210": ("monthly #2",),
        "20260120": ("monthly #3",),
        "20260105": ("monthly #4 (oldest)",),
    }
    assert names(plan.delete) == [backup(at("2026-03-01"))[0]]


def test_weeks_are_iso_weeks_in_utc() -> None:
    sunday_late = dt.datetime(2026, 3, 8, 23, 30, tzinfo=UTC)  # ISO week 10
    monday_early = dt.datetime(2026, 3, 9, 0, 30, tzinfo=UTC)  # ISO week 11
    # the same instant as sunday_late seen from UTC+2 is already Monday locally: still week 10
    sunday_late_elsewhere = sunday_late.astimezone(dt.timezone(dt.timedelta(hours=2)))
    history = [backup(sunday_late), (backup(monday_early)[0], monday_early)]
    keep, _ = select_to_keep([(history[0][0], sunday_late_elsewhere), history[1]], weekly=2)
    assert len(keep) == 2
    keep, delete = select_to_keep(
        [backup(sunday_late), backup(sunday_late - dt.timedelta(days=1))], weekly=1
    )
    assert names(keep) == [backup(sunday_late)[0]] and len(delete) == 1


def test_within_counts_back_from_the_newest_backup_not_from_now() -> None:
    # backups stopped a year ago: "within 3 days" still keeps the last three days of them
    last = dt.datetime(2025, 1, 10, 2, tzinfo=UTC)
    history = [backup(last - dt.timedelta(days=i)) for i in range(10)]
    keep, delete = select_to_keep(history, within=dt.timedelta(days=3))
    assert names(keep) == names(history[:4])  # 0..3 days before the newest
    assert len(delete) == 6


def test_each_database_and_its_safety_backups_are_pruned_apart() -> None:
    history = (
        [backup(at("2026-03-01") + dt.timedelta(hours=i), "app") for i in range(5)]
        + [backup(at("2026-03-01") + dt.timedelta(hours=i), "app-staging") for i in range(5)]
        + [backup(at("2026-02-01") + dt.timedelta(hours=i), "app", safety=True) for i in range(3)]
    )
    keep, delete = select_to_keep(history, keep_last=1)
    assert sorted(names(keep)) == sorted([
        backup(at("2026-03-01", 6), "app")[0],
        backup(at("2026-03-01", 6), "app-staging")[0],
        backup(at("2026-02-01", 4), "app", safety=True)[0],
    ])
    assert len(delete) == 10


def test_the_newest_backup_is_kept_even_when_no_rule_selects_it() -> None:
    # hourly=1 over backups of one hour still keeps the newest; within=0 would keep nothing else
    history = [backup(at("2026-03-01") + dt.timedelta(minutes=m)) for m in (0, 10, 20)]
    plan = plan_retention(history, within=dt.timedelta(0), yearly=0, keep_last=0, hourly=1)
    assert names(plan.keep) == [history[-1][0]]


def test_names_that_are_not_backups_are_never_deleted() -> None:
    history = [backup(at("2026-03-01")), backup(at("2026-03-02")), ("notes.txt", at("2020-01-01"))]
    keep, delete = select_to_keep(history, keep_last=1)
    assert "notes.txt" in names(keep)
    assert names(delete) == [history[0][0]]


def test_a_prune_without_rules_or_with_negative_counts_is_refused() -> None:
    with pytest.raises(UsageError, match="at least one retention rule"):
        select_to_keep([backup(at("2026-03-01"))])
    with pytest.raises(UsageError, match="negative"):
        select_to_keep([backup(at("2026-03-01"))], daily=-1)


def test_an_empty_history_gives_an_empty_plan() -> None:
    assert select_to_keep([], daily=7) == ([], [])


def test_invariants_hold_on_random_histories() -> None:
    rng = random.Random(20261202)
    rules = ["keep_last", "hourly", "daily", "weekly", "monthly", "yearly"]
    for _ in range(300):
        start = dt.datetime(2024, 1, 1, tzinfo=UTC)
        history = []
        for db in rng.sample(["app", "blog", "x-y"], rng.randint(1, 3)):
            for _ in range(rng.randint(1, 40)):
                seconds = rng.randrange(0, 3 * 365 * 86400)
                history.append(backup(start + dt.timedelta(seconds=seconds), db,
                                      safety=rng.random() < 0.2))
        history = list(dict(history).items())  # unique names
        counts = {rule: rng.choice([0, 0, 1, 2, 7]) for rule in rules}
        counts[rng.choice(rules)] = rng.randint(1, 5)
        keep, delete = select_to_keep(history, **counts)

        assert sorted(keep + delete) == sorted(history)
        assert not set(names(keep)) & set(names(delete))
        groups: dict[str, list] = {}
        for name, ts in history:
            groups.setdefault(name.rsplit("-", 1)[0], []).append((ts, name))
        for members in groups.values():
            assert max(members)[1] in names(keep)  # the newest of each database is kept
        if counts["keep_last"]:
            for members in groups.values():
                newest = [name for _, name in sorted(members, reverse=True)]
                assert set(newest[: counts["keep_last"]]) <= set(names(keep))
        # never more kept per group than the rules allow (+1 oldest per rule, +1 floor)
        for members in groups.values():
            kept_here = [n for _, n in members if n in names(keep)]
            assert len(kept_here) <= sum(counts.values()) + len(rules) + 1
