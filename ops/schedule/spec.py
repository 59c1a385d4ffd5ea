"""What a schedule is, and its calendar in cron's terms. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError

UNIT = "mmops-backup"  # mmops-backup.service + mmops-backup.timer
TEST_UNIT = "mmops-test-restore"  # mmops-test-restore.service + .timer (TEST_RESTORE)
DEFAULT_CALENDAR = "*-*-* 02:00:00 UTC"
DEFAULT_STALL_MINUTES = 10
DEFAULT_RANDOMIZED_DELAY = "15min"


@dataclass(frozen=True)
class ScheduleRequest:
    """Everything a scheduled run needs except secrets (those go to a 0600 env file)."""

    repo: str
    encrypt_to: str | None = None
    keep: str | None = None
    lock_days: int | None = None
    calendar: str = DEFAULT_CALENDAR
    randomized_delay: str = DEFAULT_RANDOMIZED_DELAY
    stall_minutes: float = DEFAULT_STALL_MINUTES
    env_file: str = "/etc/markdown-manager.env"
    repo_env_file: str | None = None
    host: str = ""  # how the laptop names the server (for messages and outcomes)
    scheduler: str = "auto"  # auto | systemd-system | systemd-user | cron
    test_restore: str | None = None  # TEST_RESTORE: calendar of the scheduled test restore
    notify: tuple[str, ...] = ()  # the NOTIFY targets' labels (the URLs are secrets: 0600 file)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScheduleRequest:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and d[k] is not None}
        if "notify" in known:
            known["notify"] = tuple(known["notify"])
        return cls(**known)


def check_test_restore(request: ScheduleRequest) -> None:
    """A test restore needs to read the backup; the server holds only public keys (an
    encrypted repository's backups cannot be opened there), so it is refused on the server."""
    if request.test_restore and request.encrypt_to:
        raise UsageError(
            "TEST_RESTORE cannot run on the server: its backups are encrypted (ENCRYPT_TO) and "
            "the server holds only the public key, so run the test restore where the identity "
            "is — the test-restore job of deploy/github/database-backup.yml (AGE_IDENTITY "
            "secret) or `mmops verify --restore-test --repo REPO latest --identity KEY`."
        )


_DOW = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_SHORTHANDS = {
    "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00", "weekly": "Mon *-*-* 00:00:00",
}
_CALENDAR = re.compile(
    r"^(?:(?P<dow>[A-Za-z]{3}(?:[A-Za-z]*)(?:,[A-Za-z]{3}[A-Za-z]*)*)\s+)?"
    r"\*-\*-\*\s+(?P<hour>\*|\d{1,2}):(?P<minute>\d{1,2})(?::(?P<second>\d{1,2}))?"
    r"(?:\s+(?P<tz>\S+))?$"
)


@dataclass(frozen=True)
class CronTime:
    minute: int
    hour: int | None  # None: every hour
    weekdays: tuple[int, ...]  # cron numbering (0 = Sunday); empty: every day

    def expression(self) -> str:
        hour = "*" if self.hour is None else str(self.hour)
        dow = ",".join(str(d) for d in self.weekdays) if self.weekdays else "*"
        return f"{self.minute} {hour} * * {dow}"


def calendar_to_cron(calendar: str, *, utc_offset_minutes: int = 0) -> CronTime:
    """A systemd ``OnCalendar`` of the common shapes (``[Dow ]*-*-* HH:MM[:SS] [UTC]``,
    ``hourly``/``daily``/``weekly``) as a cron time in the server's local time, which is
    ``utc_offset_minutes`` ahead of UTC (cron has no time zones). Other shapes: UsageError."""
    text = _SHORTHANDS.get(calendar.strip().lower(), calendar.strip())
    m = _CALENDAR.match(text)
    if m is None:
        raise UsageError(
            f"CALENDAR={calendar!r} has a shape cron cannot express; use "
            "'[Mon,Thu ]*-*-* HH:MM[:SS] [UTC]', hourly, daily or weekly on this server "
            "(systemd is not running here)."
        )
    tz = (m.group("tz") or "").upper()
    if tz not in ("", "UTC", "ETC/UTC", "Z"):
        raise UsageError(f"CALENDAR={calendar!r}: only UTC or the server's local time work "
                         "with cron.")
    weekdays: list[int] = []
    for name in (m.group("dow") or "").split(",") if m.group("dow") else []:
        key = name[:3].lower()
        if key not in _DOW:
            raise UsageError(f"CALENDAR={calendar!r}: {name!r} is not a weekday.")
        weekdays.append(_DOW[key])
    minute = int(m.group("minute"))
    hour = None if m.group("hour") == "*" else int(m.group("hour"))
    if minute > 59 or (hour is not None and hour > 23):
        raise UsageError(f"CALENDAR={calendar!r} is not a valid time of day.")
    if tz and utc_offset_minutes:
        # UTC → local: shift the time, and the weekdays with it when it crosses midnight.
        total = (0 if hour is None else hour) * 60 + minute + utc_offset_minutes
        day_shift, total = divmod(total, 24 * 60)
        minute = total % 60
        if hour is not None:
            hour = total // 60
            weekdays = [(d + day_shift) % 7 for d in weekdays]
    return CronTime(minute, hour, tuple(sorted(set(weekdays))))


def next_cron_run(when: CronTime, after: dt.datetime) -> dt.datetime:
    """The next local time ``when`` fires strictly after ``after`` (a naive local time)."""
    t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    for _ in range(8 * 24 * 60):
        if (t.minute == when.minute and (when.hour is None or t.hour == when.hour)
                and (not when.weekdays or (t.isoweekday() % 7) in when.weekdays)):
            return t
        t += dt.timedelta(minutes=1)
    raise ValueError("no run within a week")  # unreachable for the shapes above
