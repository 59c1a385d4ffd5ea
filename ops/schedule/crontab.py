"""The crontab block of a schedule (servers without a running systemd). Pure text."""

from __future__ import annotations

import shlex

from .spec import CronTime

BEGIN = "# BEGIN mmops scheduled backup (managed by `make schedule-ops`; do not edit)"
END = "# END mmops scheduled backup"


def render_block(entries: list[tuple[CronTime, list[str]]], log: str) -> str:
    """The lines between the markers, one per (time, command) — the same commands the
    systemd services run — output appended to ``log``. ``%`` is special in crontab lines,
    so it is escaped."""
    lines = [BEGIN]
    for when, command in entries:
        line = " ".join(shlex.quote(a) for a in command) + f" >> {shlex.quote(log)} 2>&1"
        lines.append(f"{when.expression()} {line.replace('%', chr(92) + '%')}")
    return "\n".join([*lines, END]) + "\n"


def without_block(crontab: str) -> str:
    """``crontab`` with our block (if any) removed; every other line kept as it was."""
    out, inside = [], False
    for line in crontab.splitlines(keepends=True):
        if line.rstrip("\n") == BEGIN:
            inside = True
        elif inside and line.rstrip("\n") == END:
            inside = False
        elif not inside:
            out.append(line)
    text = "".join(out)
    return text if not text or text.endswith("\n") else text + "\n"


def with_block(crontab: str, block: str) -> str:
    return without_block(crontab) + block


def has_block(crontab: str) -> bool:
    return BEGIN in crontab.splitlines()
