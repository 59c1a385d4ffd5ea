"""``KEEP="daily=7 weekly=4 monthly=12"`` → keyword arguments of ``retention.plan_retention``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..errors import UsageError

_RULES = {"last": "keep_last", "hourly": "hourly", "daily": "daily", "weekly": "weekly",
          "monthly": "monthly", "yearly": "yearly"}
_WITHIN = re.compile(r"^(\d+)([hdw])$")


def parse_keep(spec: str) -> dict[str, Any]:
    """``"daily=7 weekly=4 monthly=12 within=2d last=3"`` (spaces or commas) → kwargs."""
    rules: dict[str, Any] = {}
    for item in re.split(r"[,\s]+", spec.strip()):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"KEEP rule {item!r} is not NAME=NUMBER (e.g. daily=7).")
        if key == "within":
            m = _WITHIN.match(value)
            if not m:
                raise UsageError(f"KEEP within={value!r}: use hours, days or weeks (e.g. 2d).")
            n, unit = int(m.group(1)), m.group(2)
            rules["within"] = dt.timedelta(hours=n) if unit == "h" else dt.timedelta(
                days=n * (7 if unit == "w" else 1))
            continue
        if key not in _RULES:
            raise UsageError(
                f"KEEP rule {key!r} is unknown; use {', '.join(_RULES)} or within."
            )
        if not value.isdigit():
            raise UsageError(f"KEEP {key}={value!r}: the count must be a whole number.")
        rules[_RULES[key]] = int(value)
    if not rules:
        raise UsageError("KEEP names no rule (e.g. KEEP=\"daily=7 weekly=4 monthly=12\").")
    return rules
