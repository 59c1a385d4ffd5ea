"""Which tables a backup or restore covers: ``--tables`` / ``--exclude-tables`` patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence


def _matches(schema: str, name: str, pattern: str) -> bool:
    if "." in pattern:
        pschema, _, pname = pattern.partition(".")
        return fnmatch.fnmatchcase(schema, pschema) and fnmatch.fnmatchcase(name, pname)
    return fnmatch.fnmatchcase(name, pattern)


def select_tables(
    tables: Iterable[tuple[str, str]],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """Filter (schema, name) pairs by shell-style patterns; ``schema.name`` patterns allowed.

    No ``include`` means all tables. ``exclude`` always wins.
    """
    chosen = []
    for schema, name in tables:
        if include and not any(_matches(schema, name, p) for p in include):
            continue
        if exclude and any(_matches(schema, name, p) for p in exclude):
            continue
        chosen.append((schema, name))
    return chosen


def unmatched_patterns(
    tables: Iterable[tuple[str, str]], patterns: Sequence[str] | None
) -> list[str]:
    """Patterns that match no table (so a typo is an error, not an empty backup)."""
    pairs = list(tables)
    return [p for p in patterns or () if not any(_matches(s, n, p) for s, n in pairs)]
