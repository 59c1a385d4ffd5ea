"""Which tables a backup or restore covers: ``--tables`` / ``--exclude-tables`` patterns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence


def _split(pattern: str) -> tuple[str | None, str]:
    """``schema.name`` or ``name`` as fnmatch patterns. Like psql's patterns, a part in double
    quotes is taken literally (dots, ``*``, ``?`` and ``""`` for a quote): ``"a.b"."c.d"``."""
    parts: list[str] = [""]
    quoted = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == '"':
            if quoted and pattern[i + 1 : i + 2] == '"':
                parts[-1] += '"'
                i += 2
                continue
            quoted = not quoted
        elif c == "." and not quoted and len(parts) == 1:
            parts.append("")
        elif quoted and c in "*?[":
            parts[-1] += f"[{c}]"
        else:
            parts[-1] += c
        i += 1
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def _matches(schema: str, name: str, pattern: str) -> bool:
    pschema, pname = _split(pattern)
    if pschema is not None and not fnmatch.fnmatchcase(schema, pschema):
        return False
    return fnmatch.fnmatchcase(name, pname)


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
