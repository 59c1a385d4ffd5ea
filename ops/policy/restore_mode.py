"""The one restore-mode resolver and the one set of rules for files we did not write."""

from __future__ import annotations

from collections.abc import Sequence

from ..engine.results import RestoreMode
from ..errors import UsageError
from ..interop.detect import FileKind

MODES = ("auto", "create", "replace", "data-only")


def resolve_mode(requested: str, tables: Sequence[str], live_has_tables: bool) -> RestoreMode:
    """``auto``: with ``--tables`` data-only (into the existing schema); else replace a
    database that has user tables and create into one that has none.

    ``--tables`` with any other explicit mode is refused here, before anything is read or
    pushed, the same way in every mode (exit 2).
    """
    if requested not in MODES:
        raise UsageError(f"Unknown restore mode {requested!r}; use one of {', '.join(MODES)}.")
    if tables:
        if requested not in ("auto", "data-only"):
            raise UsageError(
                f"--tables restores into the existing schema (mode data-only), not --mode "
                f"{requested}; drop --mode or --tables. Nothing was changed."
            )
        return RestoreMode.DATA_ONLY
    if requested == "auto":
        return RestoreMode.REPLACE if live_has_tables else RestoreMode.CREATE
    return RestoreMode(requested)


def foreign_mode(kind: FileKind, requested: str, tables: Sequence[str], file_name: str) -> str:
    """The mode label of an old JSON backup or a plain SQL dump; UsageError for options that
    apply to .mmops backups only. An old JSON backup is reloaded table by table into the
    existing schema (``data-only`` may be spelled out); a SQL dump runs as written."""
    if tables:
        raise UsageError(
            f"--tables applies to .mmops backups; {file_name} is {kind.label}, restored whole. "
            "Nothing was changed."
        )
    allowed = ("auto", "data-only") if kind is FileKind.LEGACY_JSON else ("auto",)
    if requested not in allowed:
        raise UsageError(
            f"--mode {requested} applies to .mmops backups; {file_name} is {kind.label} and has "
            "its own semantics (see the plan). Nothing was changed."
        )
    return "data-only" if kind is FileKind.LEGACY_JSON else "sql-script"
