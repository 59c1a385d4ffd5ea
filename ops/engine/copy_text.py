"""Render Python values as one line of PostgreSQL's COPY text format.

Text format lets the server parse every value with its type's input function, so any column type
(enums, domains, citext, intervals, network types, arrays of them …) loads the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return array_literal(value)
    text = scalar_text(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_literal(values: Sequence[Any]) -> str:
    """``['a', None, 'b c']`` → ``{"a",NULL,"b c"}`` (every element quoted; nested lists nest)."""
    return "{" + ",".join(_array_element(v) for v in values) + "}"


def scalar_text(value: Any) -> str:
    """The PostgreSQL input text of one non-null value."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list):
        return array_literal(value)
    return str(value)


def copy_line(values: Sequence[Any]) -> str:
    """One row: tab-separated, ``\\N`` for NULL, backslash/tab/newline/CR escaped, newline-ended."""
    return (
        "\t".join(NULL if v is None else scalar_text(v).translate(_COPY_ESCAPES) for v in values)
        + "\n"
    )
