"""Check and convert a JSON value from an old backup by the type of the column it goes into.

Pure functions. ``coercer_for(column_type)`` builds one function per column once; it raises
``CoercionError`` with a short reason that the caller turns into a message naming table, column
and row.

Rules (the old scripts wrote datetimes as ISO-8601 strings and everything else as plain JSON):

- timestamptz / timestamp / date / time / timetz: ISO strings (a trailing ``Z`` is UTC); a
  timestamptz string without an offset is taken as UTC; a timestamp (no time zone) string with an
  offset is converted to UTC.
- integers: JSON integers (or integral numbers / strings); numeric: exact decimal; float: number.
- boolean: true/false (or 't'/'f'/'true'/'false' strings); uuid: canonical strings.
- json/jsonb: objects and arrays are serialized; a string holding a JSON object or array is taken
  as that document, any other string as a JSON string.
- bytea: ``\\x`` hex (PostgreSQL's text form) or base64.
- arrays: JSON lists, elements coerced by the element type (nested lists for more dimensions).
- interval: Python's ``str(timedelta)``, PostgreSQL's text form, or a number of seconds.
- everything else (text, varchar, enums, inet, …): strings; numbers and booleans become text.
  Values are then sent as COPY text (``copy_text``) and the server parses them by type.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

Coercer = Callable[[Any], Any]


class CoercionError(ValueError):
    """A value does not fit the column's type; ``str(exc)`` is the short reason."""


@dataclass(frozen=True)
class ColumnType:
    """What the catalog says about a column's type (domains already resolved to their base).

    ``base``: the type name (``pg_type.typname``) of the column, or of the array's element;
    ``is_array``: the column is an array of ``base``; ``display``: ``format_type`` output.
    """

    base: str
    is_array: bool = False
    display: str = ""


_INT_RANGES = {
    "int2": (-(2**15), 2**15 - 1),
    "int4": (-(2**31), 2**31 - 1),
    "int8": (-(2**63), 2**63 - 1),
}


def _iso(text: str) -> str:
    return text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text


def _need_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CoercionError(f"expected {what} as a string, found {type(value).__name__}")
    return value


def _timestamptz(value: Any) -> dt.datetime:
    text = _need_str(value, "an ISO-8601 timestamp")
    try:
        parsed = dt.datetime.fromisoformat(_iso(text.strip()).replace(" ", "T", 1))
    except ValueError as exc:
        raise CoercionError("not an ISO-8601 timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _timestamp(value: Any) -> dt.datetime:
    parsed = _timestamptz(value)
    return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _date(value: Any) -> dt.date:
    text = _need_str(value, "an ISO-8601 date")
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise CoercionError("not an ISO-8601 date (YYYY-MM-DD)") from exc


def _time(value: Any) -> dt.time:
    text = _need_str(value, "an ISO-8601 time")
    try:
        return dt.time.fromisoformat(_iso(text.strip()))
    except ValueError as exc:
        raise CoercionError("not an ISO-8601 time") from exc


def _timetz(value: Any) -> dt.time:
    parsed = _time(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _integer(kind: str) -> Coercer:
    low, high = _INT_RANGES[kind]

    def coerce(value: Any) -> int:
        if isinstance(value, bool):
            raise CoercionError("expected an integer, found a boolean")
        if isinstance(value, int):
            result = value
        elif isinstance(value, Decimal) and value == value.to_integral_value():
            result = int(value)
        elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            result = int(value)
        else:
            raise CoercionError("not an integer")
        if not low <= result <= high:
            raise CoercionError(f"out of range for {kind}")
        return result

    return coerce


def _numeric(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise CoercionError("expected a number, found a boolean")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise CoercionError("not a number") from exc
    raise CoercionError(f"expected a number, found {type(value).__name__}")


def _float(value: Any) -> float:
    if isinstance(value, str) and value.strip().lower() in ("nan", "infinity", "-infinity"):
        return float(value.strip().replace("inity", ""))
    return float(_numeric(value))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("t", "true", "f", "false"):
        return value.strip().lower() in ("t", "true")
    raise CoercionError("not a boolean")


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(_need_str(value, "a UUID"))
    except ValueError as exc:
        raise CoercionError("not a UUID") from exc


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() and "." not in str(obj) else float(obj)
    raise TypeError(type(obj).__name__)


def _json(value: Any) -> str:
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped.startswith(("{", "[")):
            try:
                json.loads(value)
            except ValueError:
                pass
            else:
                return value
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _bytea(value: Any) -> bytes:
    text = _need_str(value, "hex (\\x…) or base64 bytes")
    try:
        if text.startswith("\\x"):
            return bytes.fromhex(text[2:])
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CoercionError("not \\x hex or base64 bytes") from exc


_TIMEDELTA = re.compile(r"^(-?\d+) days?, (-?\d+:\d\d:\d\d(?:\.\d+)?)$")


def _interval(value: Any) -> str:
    """Intervals as Python's ``str(timedelta)`` ("1 day, 2:00:00"), PostgreSQL text or seconds."""
    if isinstance(value, bool):
        raise CoercionError("expected an interval, found a boolean")
    if isinstance(value, int | float | Decimal):
        return f"{value} seconds"
    text = _need_str(value, "an interval").strip()
    m = _TIMEDELTA.match(text)
    return f"{m.group(1)} days {m.group(2)}" if m else text


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return str(value)
    raise CoercionError(f"expected text, found a JSON {type(value).__name__}")


_SCALARS: dict[str, Coercer] = {
    "timestamptz": _timestamptz,
    "timestamp": _timestamp,
    "date": _date,
    "time": _time,
    "timetz": _timetz,
    "int2": _integer("int2"),
    "int4": _integer("int4"),
    "int8": _integer("int8"),
    "numeric": _numeric,
    "float4": _float,
    "float8": _float,
    "bool": _bool,
    "uuid": _uuid,
    "json": _json,
    "jsonb": _json,
    "bytea": _bytea,
    "interval": _interval,
}


def _array(element: Coercer) -> Coercer:
    def coerce(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise CoercionError("expected a JSON list for an array column")
        return [None if v is None else (coerce(v) if isinstance(v, list) else element(v))
                for v in value]  # fmt: skip

    return coerce


def coercer_for(column: ColumnType) -> Coercer:
    """One function turning a JSON value into what asyncpg needs for ``column`` (None stays)."""
    scalar = _SCALARS.get(column.base, _text)
    inner = _array(scalar) if column.is_array else scalar

    def coerce(value: Any) -> Any:
        return None if value is None else inner(value)

    return coerce
