"""Retention for safety backups: the newest N of each database, by each backup's own time.

The same rules as every prune (``retention.plan_retention`` with ``keep_last``), so "newest"
and the floor (a database's newest backup is always kept) mean one thing everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from .retention import plan_retention


def select_beyond_newest(
    items: Sequence[tuple[str, str, dt.datetime]], keep: int
) -> list[str]:
    """``items``: (name, database, created_at) of backups named as we name them. The names to
    delete: per database (read from each name), all but the newest ``keep`` (never fewer than
    one kept). Another database's backups never count."""
    plan = plan_retention([(name, created) for name, _db, created in items],
                          keep_last=max(keep, 1))
    return sorted(name for name, _created in plan.delete)
