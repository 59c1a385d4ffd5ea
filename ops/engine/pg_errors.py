"""Turn a PostgreSQL error into a clause that names things, never the values of a row.

PostgreSQL puts row values in several places of an error: a CHECK or NOT NULL violation's
DETAIL ("Failing row contains (…)"), a key violation's DETAIL ("Key (email)=(…)"), a COPY
error's CONTEXT ("COPY users, line 3: "…"") and the message of a bad input value ("invalid
input syntax for type integer: "…""). Those can hold password hashes or personal data and end
up in terminals and CI logs, so ``describe_pg_error`` builds its text only from the error's
structured fields (SQLSTATE, schema, table, column, constraint), the line number of a COPY and
PostgreSQL's hint — never from DETAIL, nor from the message of an integrity or data error.
"""

from __future__ import annotations

import re

import asyncpg

from .sql_text import qualified, quote_ident

__all__ = ["describe_pg_error"]

# SQLSTATE classes whose primary message may quote a value from the data.
_VALUE_CLASSES = ("22", "23")

_INTEGRITY = {
    "23502": "the not-null constraint",
    "23503": "the foreign key",
    "23505": "the unique constraint",
    "23514": "the check constraint",
    "23P01": "the exclusion constraint",
}

# "COPY users, line 3, column email: …" / "COPY users, line 3: …" (only the names are kept)
_COPY_CONTEXT = re.compile(
    r"^COPY (?P<table>[^,]+), line (?P<line>\d+)(?:, column (?P<col>[^:]+))?"
)


def _words(exc: asyncpg.PostgresError) -> str:
    """``CheckViolationError`` → ``check violation``; the SQLSTATE when the class is generic."""
    name = type(exc).__name__.removesuffix("Error")
    if name in ("Postgres", "UnknownPostgres", ""):
        return f"SQLSTATE {exc.sqlstate}"
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def _field(exc: asyncpg.PostgresError, name: str) -> str | None:
    value = getattr(exc, name, None)
    return value if isinstance(value, str) and value else None


def describe_pg_error(
    exc: asyncpg.PostgresError, *, table: str | None = None, row: int | None = None
) -> str:
    """One clause (lower-case start, no final period) saying what PostgreSQL refused, safe to
    show and log.

    ``table``: the (qualified) table being loaded when the caller knows it; ``row``: the
    1-based row of that table's data, when known (otherwise taken from a COPY context).
    Names the constraint, table and column; never includes a value of the row.
    """
    sqlstate = exc.sqlstate or ""
    context = _field(exc, "context") or ""
    column = _field(exc, "column_name")
    copy = None
    for line in context.splitlines():
        copy = _COPY_CONTEXT.match(line.strip())
        if copy:
            break
    if copy is not None:
        if row is None:
            row = int(copy.group("line"))
        if column is None and copy.group("col"):
            column = copy.group("col").strip()
        if table is None:
            table = copy.group("table").strip()
    schema_name, table_name = _field(exc, "schema_name"), _field(exc, "table_name")
    if table_name:
        table = qualified(schema_name, table_name) if schema_name else quote_ident(table_name)

    where: list[str] = []
    if row is not None:
        where.append(f"row {row}")
    if table:
        where.append(f"{'of ' if row is not None else ''}table {table}")
    located = " ".join(where)
    col = f" (column {column})" if column else ""

    if sqlstate.startswith("23"):
        what = _INTEGRITY.get(sqlstate, "an integrity constraint")
        constraint = _field(exc, "constraint_name")
        named = f" {quote_ident(constraint)}" if constraint else ""
        subject = located or "a row"
        text = f"{subject}{col} violates {what}{named} ({_words(exc)})"
    elif sqlstate[:2] in _VALUE_CLASSES:
        subject = f"a value in {located}" if located else "a value"
        text = f"{subject}{col} was refused ({_words(exc)})"
    else:
        message = _field(exc, "message") or _words(exc)
        text = str(message).splitlines()[0].rstrip(".")
        if located and copy is not None:
            text += f" (while loading {located}{col})"
    hint = _field(exc, "hint")
    if hint and sqlstate[:2] not in _VALUE_CLASSES:
        text += f"; PostgreSQL's hint: {hint.rstrip('.')}"
    return text
