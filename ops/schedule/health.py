"""Is the scheduled backup healthy? In the Nagios/Icinga plugin convention (the one
``mmops check`` uses): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Pure: the server's facts in
(what is installed, whether the scheduler runs it, the status file, the time now), one
verdict out — so a schedule cannot look healthy while its runs fail, are missed, or nothing
would start them.

  * CRITICAL: nothing installed; the entry or timer is missing from the scheduler; the
    scheduler is not running (cron daemon, systemd timer); the last run failed, stalled or
    died; the last test restore failed; runs missed for two intervals or more;
  * WARNING: one run missed (no run started within the calendar's longest interval plus
    ``GRACE``); user timers without lingering; a notification not delivered;
  * OK otherwise (also before the first run, until it is overdue).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..policy.check import CRITICAL, OK, STATUS_NAMES, UNKNOWN, WARNING, human_age

GRACE = dt.timedelta(hours=1)  # past the calendar's interval: the timer's random delay, a slow run


@dataclass(frozen=True)
class ScheduleFacts:
    """What the server knows about its schedule, gathered by ``host.status``."""

    installed: bool
    scheduler: str = ""
    present: bool = False  # the crontab block / the timer is there
    scheduler_running: bool | None = None  # None: not known
    scheduler_problem: str = ""  # why it is not running, in words
    interval: dt.timedelta | None = None  # the longest gap between two calendar times
    installed_at: dt.datetime | None = None
    last: dict[str, Any] = field(default_factory=dict)  # the status file
    last_pid_alive: bool | None = None  # for a run recorded as running
    linger_off: bool = False  # user units of a user without lingering


@dataclass(frozen=True)
class Health:
    code: int
    problems: list[str]  # each a clause, most severe first

    @property
    def name(self) -> str:
        return STATUS_NAMES[self.code]

    def line(self, host: str) -> str:
        """The one status line (a plugin's first line)."""
        if self.code == OK:
            return f"SCHEDULE OK - the scheduled backup on {host} is installed, its scheduler " \
                   "is running and its last run succeeded (or is not due yet)."
        return f"SCHEDULE {self.name} - on {host}: " + "; ".join(self.problems) + "."

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.name}


def _time(text: Any) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def evaluate(facts: ScheduleFacts, now: dt.datetime) -> Health:
    """The verdict for ``facts`` at ``now`` (an aware UTC time)."""
    critical: list[str] = []
    warning: list[str] = []
    if not facts.installed:
        return Health(CRITICAL, ["no scheduled backup is installed (make schedule-ops)"])
    if not facts.present:
        critical.append(f"the schedule is missing from {facts.scheduler} (reinstall it with "
                        "make schedule-ops)")
    elif facts.scheduler_running is False:
        critical.append(facts.scheduler_problem or f"{facts.scheduler} is not running")
    last = facts.last or {}
    result, message = last.get("result"), str(last.get("message") or "").rstrip(".")
    if last.get("state") == "running" and facts.last_pid_alive is False:
        critical.append(f"the run started at {last.get('started')} died without a result "
                        f"(pid {last.get('pid')} is gone)")
    elif result in ("failed", "stalled"):
        critical.append(f"the last run ({last.get('started')}) {result}: {message}")
    tested = last.get("test_restore") or {}
    if tested.get("result") in ("failed", "stalled"):
        critical.append(f"the last test restore ({tested.get('started')}) {tested['result']}: "
                        + str(tested.get("message") or "").rstrip("."))
    starts = [t for t in (_time(last.get("started")), facts.installed_at) if t is not None]
    since = max(starts) if starts else None
    if facts.interval is not None and since is not None:
        idle = now - since
        missed = int((idle - GRACE) / facts.interval) if idle > facts.interval + GRACE else 0
        if missed:
            what = "no run has started" if last.get("started") else "the schedule has never run"
            clause = (f"overdue: {what} for {human_age(idle.total_seconds())} (since "
                      f"{since.isoformat(timespec='minutes')}), "
                      f"{missed} scheduled run{'s' if missed > 1 else ''} missed")
            (critical if missed >= 2 else warning).append(clause)
    if facts.linger_off:
        warning.append("user timers run only while the user is logged in (sudo loginctl "
                       "enable-linger USER)")
    if last.get("notify_warning"):
        warning.append(str(last["notify_warning"]).rstrip("."))
    if critical:
        return Health(CRITICAL, critical + warning)
    if warning:
        return Health(WARNING, warning)
    return Health(OK, [])


def unknown(reason: str) -> Health:
    """The status could not be read (SSH, the agent, a damaged file)."""
    return Health(UNKNOWN, [reason.rstrip(".")])


def longest_gap(times: list[dt.datetime]) -> dt.timedelta | None:
    """The longest interval between consecutive calendar times (None with fewer than two)."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return max(gaps) if gaps else None


__all__ = ["CRITICAL", "GRACE", "OK", "UNKNOWN", "WARNING", "Health", "ScheduleFacts",
           "evaluate", "longest_gap", "unknown"]
