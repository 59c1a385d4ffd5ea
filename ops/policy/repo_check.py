"""``mmops repo check``: which stored backups to read in full, and what the findings add up to,
in the Nagios/Icinga plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

Pure: the caller lists and reads the repository. restic's ``check --read-data-subset`` is the
model for the sample: ``all``, ``N%`` or ``N`` objects, chosen deterministic-randomly — each
name ranked by the sha256 of (seed, name) — so a run can be repeated exactly (same seed) and
runs with different seeds (by default, the UTC date) read different objects over time.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .check import CRITICAL, OK, STATUS_NAMES, UNKNOWN, WARNING

# How bad each status is when several objects report: a proven mismatch outranks "could not
# look" (monitoring-plugins' max_state_alt order), which outranks a warning.
SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_COUNT = re.compile(r"^\s*(\d+)\s*$")


@dataclass(frozen=True)
class ReadData:
    """Which verified backups are read in full: none, all, a percentage or a count."""

    mode: str = "none"  # none | all | percent | count
    amount: float = 0.0

    def describe(self) -> str:
        if self.mode == "percent":
            return f"{self.amount:g}%"
        if self.mode == "count":
            return str(int(self.amount))
        return self.mode


def parse_read_data(text: str | None) -> ReadData:
    """``all``, ``10%`` (0 < N ≤ 100) or ``5`` (objects, ≥ 1); ValueError with the reason."""
    if text is None:
        return ReadData()
    if text.strip().lower() == "all":
        return ReadData("all", 100.0)
    m = _PERCENT.match(text)
    if m is not None:
        value = float(m.group(1))
        if not 0 < value <= 100:
            raise ValueError(f"{text!r} is not a percentage between 0 and 100")
        return ReadData("percent", value)
    m = _COUNT.match(text)
    if m is not None and int(m.group(1)) >= 1:
        return ReadData("count", float(m.group(1)))
    raise ValueError(f"{text!r} is not all, a percentage (10%) or a number of backups (5)")


def choose_sample(names: Iterable[str], read: ReadData, seed: str) -> list[str]:
    """The names to read in full, in the order they are ranked (deterministic for a seed).
    A percentage rounds up, so any non-empty repository reads at least one object."""
    unique = sorted(set(names))
    if read.mode == "none" or not unique:
        return []
    if read.mode == "all":
        return unique
    if read.mode == "percent":
        wanted = math.ceil(len(unique) * read.amount / 100)
    else:
        wanted = int(read.amount)
    ranked = sorted(unique, key=lambda n: hashlib.sha256(f"{seed}\0{n}".encode()).digest())
    return ranked[: min(wanted, len(unique))]


@dataclass(frozen=True)
class Problem:
    """One finding about one object: its status and one sentence naming it."""

    name: str
    status: int
    text: str

    @property
    def line(self) -> str:
        return f"{STATUS_NAMES[self.status]}: {self.name}: {self.text}"


@dataclass(frozen=True)
class RepoCheckResult:
    status: int
    line: str  # "REPO CHECK OK - ... | perfdata"
    repository: str
    backups: int  # verified backups checked against their sidecars
    read: list[str] = field(default_factory=list)  # read in full
    bytes_read: int = 0
    read_data: str = "none"
    seed: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]

    @property
    def lines(self) -> list[str]:
        """The status line, then one line per problem (the plugin's long output)."""
        return [self.line, *(p.line for p in self.problems)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status_name"] = self.status_name
        d["problems"] = [{**asdict(p), "status_name": STATUS_NAMES[p.status]}
                         for p in self.problems]
        return d


def worst(statuses: Iterable[int]) -> int:
    return max(statuses, key=SEVERITY.__getitem__, default=OK)


def evaluate(repository: str, backups: int, read: list[str], bytes_read: int,
             problems: list[Problem], *, read_data: ReadData, seed: str) -> RepoCheckResult:
    """The overall status and its line: the worst problem's status (a repository holding no
    backup at all is a WARNING — a check that checked nothing is not a pass)."""
    problems = sorted(problems, key=lambda p: (-SEVERITY[p.status], p.name))
    status = worst(p.status for p in problems)
    what = f"{backups} backup(s) in {repository}"
    if backups == 0 and not problems:
        status = WARNING
        text = f"no backup in {repository}"
    elif problems:
        text = f"{len(problems)} problem(s) with {what}; first: {problems[0].name}: " \
               f"{problems[0].text}"
    else:
        text = f"{what} match their sidecars"
        if read:
            text += f"; {len(read)} read in full, digests match"
    if read_data.mode != "none":
        text += f" (read-data {read_data.describe()}, seed {seed})"
    perf = (f"backups={backups};;;0 read={len(read)};;;0 bytes_read={bytes_read}B;;;0 "
            f"problems={len(problems)};;;0")
    line = f"REPO CHECK {STATUS_NAMES[status]} - {text} | {perf}"
    return RepoCheckResult(status, line, repository, backups, list(read), bytes_read,
                           read_data.describe(), seed, problems)


def unknown(repository: str, reason: str) -> RepoCheckResult:
    """The repository could not be checked at all (unreachable, refused, a usage error)."""
    return RepoCheckResult(UNKNOWN, f"REPO CHECK UNKNOWN - {reason}", repository, 0)


__all__ = [
    "CRITICAL", "OK", "UNKNOWN", "WARNING", "Problem", "ReadData", "RepoCheckResult",
    "choose_sample", "evaluate", "parse_read_data", "unknown", "worst",
]
