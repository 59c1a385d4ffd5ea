"""The "is there a recent backup?" check, in the Nagios/Icinga plugin convention.

Pure: given the backups' own UTC timestamps (from their names), the time now and the
thresholds, say OK (0), WARNING (1), CRITICAL (2) or UNKNOWN (3) with one status line and
perfdata (``age=…s;warn;crit;0 count=…;warn;crit;0``, thresholds in the plugin range syntax:
``N:`` alerts below N). The caller lists the repository; an unreachable one is UNKNOWN.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``26h``, ``90m``, ``2d``, ``1w``, ``3600s`` or plain seconds → seconds."""
    m = _DURATION.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration (e.g. 26h, 90m, 2d)")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]


def human_age(seconds: float) -> str:
    s = int(max(0, seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{s % 60:02d}s"


@dataclass(frozen=True)
class Thresholds:
    max_age_s: float  # older than this: CRITICAL
    warn_age_s: float | None = None  # older than this: WARNING
    min_count: int = 1  # fewer backups than this: CRITICAL
    warn_count: int | None = None  # fewer than this: WARNING


@dataclass(frozen=True)
class DatabaseCheck:
    database: str
    status: int
    count: int
    newest: str | None  # the newest backup's name
    age_s: float | None  # of the newest backup
    reason: str


@dataclass(frozen=True)
class CheckResult:
    status: int
    line: str  # "BACKUP OK - ... | perfdata"
    databases: list[DatabaseCheck] = field(default_factory=list)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status_name"] = self.status_name
        return d


def _check_one(database: str, stamps: list[tuple[str, dt.datetime]], now: dt.datetime,
               th: Thresholds) -> DatabaseCheck:
    count = len(stamps)
    if not stamps:
        return DatabaseCheck(database, CRITICAL, 0, None, None, f"{database}: no backup at all")
    name, created = max(stamps, key=lambda s: (s[1], s[0]))
    age = (now - created).total_seconds()
    future = age < -300  # more than 5 minutes ahead: a clock is wrong somewhere
    age = max(0.0, age)
    desc = f"{database}: newest {name} is {human_age(age)} old, {count} backup(s)"
    if future:
        return DatabaseCheck(database, WARNING, count, name, age,
                             f"{database}: newest {name} is dated in the future (clock skew?)")
    if age > th.max_age_s:
        return DatabaseCheck(database, CRITICAL, count, name, age,
                             f"{desc} (older than {human_age(th.max_age_s)})")
    if count < th.min_count:
        return DatabaseCheck(database, CRITICAL, count, name, age,
                             f"{desc} (fewer than {th.min_count})")
    if th.warn_age_s is not None and age > th.warn_age_s:
        return DatabaseCheck(database, WARNING, count, name, age,
                             f"{desc} (older than {human_age(th.warn_age_s)})")
    if th.warn_count is not None and count < th.warn_count:
        return DatabaseCheck(database, WARNING, count, name, age,
                             f"{desc} (fewer than {th.warn_count})")
    return DatabaseCheck(database, OK, count, name, age, desc)


def _perf(value: str, warn: str, crit: str) -> str:
    return f"{value};{warn};{crit};0"


def evaluate(
    backups: list[tuple[str, str, dt.datetime]],
    now: dt.datetime,
    thresholds: Thresholds,
    *,
    database: str | None = None,
    repository: str = "",
    ignored: list[str] | None = None,
) -> CheckResult:
    """``backups``: (name, database, created_at UTC) of every verified non-safety backup.
    ``database``: check only that one (and CRITICAL when it has none); otherwise every
    database the repository holds backups of (CRITICAL when it holds none at all).
    ``ignored``: names that look like backups but are not verified ones: they never count,
    and the line names how many (and the newest) so that someone looks at them."""
    by_db: dict[str, list[tuple[str, dt.datetime]]] = {}
    for name, db, created in backups:
        if database is None or db == database:
            by_db.setdefault(db, []).append((name, created))
    if database is not None:
        by_db.setdefault(database, [])
    where = f" in {repository}" if repository else ""
    if ignored:
        where += (f" ({len(ignored)} file(s) that are not verified backups ignored, "
                  f"e.g. {max(ignored)})")
    if not by_db:
        line = f"BACKUP CRITICAL - no backup{where} | age=U;;;0 count=0;;;0"
        return CheckResult(CRITICAL, line, [])
    checks = [_check_one(db, stamps, now, thresholds) for db, stamps in sorted(by_db.items())]
    status = max(c.status for c in checks)
    # The worst database speaks first; the perfdata is that of the oldest newest backup.
    worst = sorted(checks, key=lambda c: (-c.status, -(c.age_s if c.age_s is not None
                                                        else float("inf"))))
    text = "; ".join(c.reason for c in worst)
    ages = [c.age_s for c in checks]
    age = "U" if any(a is None for a in ages) else f"{int(max(a for a in ages if a is not None))}s"
    warn_age = f"{int(thresholds.warn_age_s)}" if thresholds.warn_age_s is not None else ""
    count = min(c.count for c in checks)
    warn_count = f"{thresholds.warn_count}:" if thresholds.warn_count is not None else ""
    perf = (f"age={_perf(age, warn_age, str(int(thresholds.max_age_s)))} "
            f"count={_perf(str(count), warn_count, f'{thresholds.min_count}:')}")
    line = f"BACKUP {STATUS_NAMES[status]} - {text}{where} | {perf}"
    return CheckResult(status, line, checks)


def unknown(reason: str) -> CheckResult:
    """The repository could not be listed (unreachable, refused, misconfigured)."""
    return CheckResult(UNKNOWN, f"BACKUP UNKNOWN - {reason}", [])
