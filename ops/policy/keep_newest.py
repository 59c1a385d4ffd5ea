"""Retention for safety backups: the newest N of each database, by each backup's own time."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence


def select_beyond_newest(
    items: Sequence[tuple[str, str, dt.datetime]], keep: int
) -> list[str]:
    """``items``: (name, database, created_at). The names to delete: per database, all but the
    newest ``keep`` (never fewer than one kept). Another database's backups never count."""
    by_db: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for name, database, created in items:
        by_db[database].append((created, name))
    doomed: list[str] = []
    for entries in by_db.values():
        entries.sort(reverse=True)
        doomed += [name for _created, name in entries[max(keep, 1):]]
    return sorted(doomed)
