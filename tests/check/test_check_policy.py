"""The pure evaluation of `mmops check`: status, status line and perfdata for every case."""

from __future__ import annotations

import datetime as dt

import pytest

from ops.policy.check import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    Thresholds,
    evaluate,
    human_age,
    parse_duration,
    unknown,
)

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
TH = Thresholds(max_age_s=26 * 3600)


def backup(db: str, hours_ago: float) -> tuple[str, str, dt.datetime]:
    at = NOW - dt.timedelta(hours=hours_ago)
    return f"{db}-{at:%Y%m%dT%H%M%SZ}.mmops", db, at


def test_a_fresh_backup_is_ok_with_perfdata() -> None:
    r = evaluate([backup("app", 30), backup("app", 3)], NOW, TH, repository="s3://b/p")
    assert r.status == OK
    assert r.line == ("BACKUP OK - app: newest app-20261202T090000Z.mmops is 3h00m old, "
                      "2 backup(s) in s3://b/p | age=10800s;;93600;0 count=2;;1:;0")


def test_a_stale_backup_is_critical() -> None:
    r = evaluate([backup("app", 27)], NOW, TH)
    assert r.status == CRITICAL
    assert "app: newest app-20261201T090000Z.mmops is 1d3h old, 1 backup(s) (older than 1d2h)" \
        in r.line
    assert "| age=97200s;;93600;0" in r.line


def test_the_warning_age_comes_before_critical() -> None:
    th = Thresholds(max_age_s=26 * 3600, warn_age_s=20 * 3600)
    assert evaluate([backup("app", 21)], NOW, th).status == WARNING
    assert evaluate([backup("app", 19)], NOW, th).status == OK
    assert "age=75600s;72000;93600;0" in evaluate([backup("app", 21)], NOW, th).line


def test_an_empty_repository_is_critical() -> None:
    r = evaluate([], NOW, TH, repository="/srv/backups")
    assert (r.status, r.line) == (CRITICAL, "BACKUP CRITICAL - no backup in /srv/backups | "
                                             "age=U;;;0 count=0;;;0")


def test_a_named_database_without_backups_is_critical_even_if_others_have_some() -> None:
    r = evaluate([backup("other", 1)], NOW, TH, database="app")
    assert r.status == CRITICAL and r.line.startswith("BACKUP CRITICAL - app: no backup at all")
    assert [c.database for c in r.databases] == ["app"]


def test_every_database_is_checked_and_the_worst_decides() -> None:
    r = evaluate([backup("a", 1), backup("b", 40), backup("b", 64)], NOW, TH)
    assert r.status == CRITICAL
    assert r.line.index("b: newest") < r.line.index("a: newest")  # the worst first
    assert "age=144000s" in r.line and "count=1;" in r.line  # oldest newest, smallest count


def test_too_few_backups_are_critical_or_warning() -> None:
    three = [backup("app", h) for h in (1, 25, 49)]
    assert evaluate(three, NOW, Thresholds(26 * 3600, min_count=4)).status == CRITICAL
    r = evaluate(three, NOW, Thresholds(26 * 3600, min_count=1, warn_count=7))
    assert r.status == WARNING and "count=3;7:;1:;0" in r.line


def test_a_backup_dated_in_the_future_warns_of_clock_skew() -> None:
    r = evaluate([backup("app", -2)], NOW, TH)
    assert r.status == WARNING and "in the future (clock skew?)" in r.line


def test_unknown_is_exit_3() -> None:
    r = unknown("cannot list s3://b: refused")
    assert (r.status, r.status_name, r.line) == (UNKNOWN, "UNKNOWN",
                                                 "BACKUP UNKNOWN - cannot list s3://b: refused")


@pytest.mark.parametrize(("text", "seconds"), [
    ("26h", 93600), ("90m", 5400), ("2d", 172800), ("1w", 604800), ("3600", 3600),
    ("45s", 45), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "0", "26 hours", "1y"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_human_age() -> None:
    assert [human_age(s) for s in (59, 61, 3600, 93600, -5)] == [
        "0m59s", "1m01s", "1h00m", "1d2h", "0m00s"]


def test_files_that_are_not_verified_backups_are_named_but_change_nothing() -> None:
    junk = ["app-20991231T235959Z.mmops", "app-20991231T235958Z.mmops"]
    plain = evaluate([backup("app", 2)], NOW, TH, repository="R")
    result = evaluate([backup("app", 2)], NOW, TH, repository="R", ignored=junk)
    assert result.status == plain.status == OK
    assert "app-20991231T235959Z.mmops" in result.line and "in R (2 file(s)" in result.line
    assert result.line.split(" | ")[1] == plain.line.split(" | ")[1]
    assert evaluate([], NOW, TH, ignored=junk).status == CRITICAL  # junk is no backup
