"""What a notification says: one event of a scheduled run (or a test), as plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__

RESULTS = ("ok", "failed", "stalled", "test")
KINDS = ("backup", "test-restore", "test")


@dataclass(frozen=True)
class Event:
    """``kind`` what ran (backup, test-restore, test), ``result`` how it ended (ok, failed,
    stalled, test), ``message`` the one sentence the status file and the log also hold."""

    kind: str
    result: str
    host: str
    message: str
    database: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"))

    @property
    def title(self) -> str:
        what = {"backup": "Scheduled backup", "test-restore": "Scheduled test restore",
                "test": "Test notification"}.get(self.kind, self.kind)
        verdict = {"ok": "OK", "failed": "FAILED", "stalled": "STALLED (aborted)",
                   "test": "from mmops"}.get(self.result, self.result)
        where = f" on {self.host}" if self.host else ""
        of = f" ({self.database})" if self.database else ""
        return f"{what} {verdict}{where}{of}"

    @property
    def severity(self) -> str:
        """apprise's notify type: success, failure, warning or info."""
        return {"ok": "success", "failed": "failure", "stalled": "failure"}.get(
            self.result, "info")

    def payload(self) -> dict[str, Any]:
        """The JSON a webhook receives. ``text`` is the line chat webhooks display."""
        return {
            "source": "mmops", "version": __version__, "event": self.kind,
            "result": self.result, "ok": self.result in ("ok", "test"), "host": self.host,
            "database": self.database, "time": self.time, "title": self.title,
            "message": self.message, "text": f"{self.title}: {self.message}",
            "details": self.details,
        }
