"""The pure parts of `mmops repo check`: the --read-data spec, the deterministic-random sample
and how findings add up to one Nagios status (a mismatch outranks "could not look")."""

from __future__ import annotations

import pytest

from ops.policy.repo_check import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    Problem,
    ReadData,
    choose_sample,
    evaluate,
    parse_read_data,
)

NAMES = [f"db-202612{d:02d}T020000Z.mmops" for d in range(1, 21)]


@pytest.mark.parametrize("text,expected", [
    (None, ReadData()), ("all", ReadData("all", 100)), ("ALL", ReadData("all", 100)),
    ("10%", ReadData("percent", 10)), ("2.5 %", ReadData("percent", 2.5)),
    ("100%", ReadData("percent", 100)), ("3", ReadData("count", 3)),
])
def test_read_data_specs_parse(text: str | None, expected: ReadData) -> None:
    assert parse_read_data(text) == expected


@pytest.mark.parametrize("text", ["", "half", "0%", "101%", "-5", "0", "1/5", "10%%"])
def test_bad_read_data_specs_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        parse_read_data(text)


def test_a_percentage_rounds_up_and_a_count_is_capped() -> None:
    assert len(choose_sample(NAMES, ReadData("percent", 10), "s")) == 2
    assert len(choose_sample(NAMES, ReadData("percent", 1), "s")) == 1
    assert len(choose_sample(NAMES[:3], ReadData("count", 5), "s")) == 3
    assert choose_sample(NAMES, ReadData("all", 100), "s") == sorted(NAMES)
    assert choose_sample(NAMES, ReadData(), "s") == []
    assert choose_sample([], ReadData("percent", 50), "s") == []


def test_the_sample_is_deterministic_per_seed_and_seeds_cover_the_repository() -> None:
    spec = ReadData("percent", 10)
    first = choose_sample(NAMES, spec, "2026-12-06")
    assert first == choose_sample(list(reversed(NAMES)), spec, "2026-12-06")
    covered = {n for day in range(1, 31) for n in choose_sample(NAMES, spec, f"2026-12-{day}")}
    assert len(covered) > len(NAMES) // 2


def test_the_worst_finding_decides_and_a_mismatch_outranks_unknown() -> None:
    spec = ReadData("all", 100)
    found = [Problem("b", UNKNOWN, "cannot be read: timeout"), Problem("a", WARNING, "no digest"),
             Problem("c", CRITICAL, "the sha256 differs")]
    result = evaluate("s3://b/p", 3, ["a", "b", "c"], 30, found, read_data=spec, seed="x")
    assert result.status == CRITICAL
    assert result.lines == [
        "REPO CHECK CRITICAL - 3 problem(s) with 3 backup(s) in s3://b/p; first: c: the sha256 "
        "differs (read-data all, seed x) | backups=3;;;0 read=3;;;0 bytes_read=30B;;;0 "
        "problems=3;;;0",
        "CRITICAL: c: the sha256 differs", "UNKNOWN: b: cannot be read: timeout",
        "WARNING: a: no digest"]
    assert evaluate("r", 1, [], 0, found[:2], read_data=ReadData(), seed="").status == UNKNOWN
    assert evaluate("r", 1, [], 0, [], read_data=ReadData(), seed="").status == OK
    assert evaluate("r", 0, [], 0, [], read_data=ReadData(), seed="").status == WARNING
