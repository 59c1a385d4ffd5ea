"""What each fleet command runs on one host — the single-host ``mmops`` command, unchanged, with
``--json`` — and how its JSON result reads as one row of the summary (size, detail)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FleetCommand:
    name: str
    argv: tuple[str, ...]  # after `mmops`; settings reach it through its environment variables
    requires: tuple[str, ...]  # environment variables every host must have (from anywhere)
    summarize: Callable[[dict[str, Any]], tuple[int | None, str]]  # → (size in bytes, detail)


def _setup(result: dict[str, Any]) -> tuple[int | None, str]:
    verb = {"verified": "up to date (verified)", "installed": "installed",
            "updated": "updated (re-synced)", "repaired": "repaired"}
    return None, (f"agent {str(result.get('hash', ''))[:12]} "
                  f"{verb.get(result.get('action', ''), result.get('action', ''))} in "
                  f"{result.get('ops_dir', '?')}")


def _backup(result: dict[str, Any]) -> tuple[int | None, str]:
    published = result.get("published")
    where = result.get("path") or ""
    if published:
        stored = str(published["repository"]).rstrip("/") + "/" + str(published["name"])
        where = f"{stored}" + (f" (copy: {where})" if where else "")
        size = int(published.get("size_bytes") or result.get("size_bytes") or 0)
    else:
        size = int(result.get("size_bytes") or 0)
    return size, f"{result.get('database', '?')} → {where}"


def _schedule(result: dict[str, Any]) -> tuple[int | None, str]:
    inst = result.get("installed") or {}
    return None, (f"{inst.get('scheduler', '?')}, next run {inst.get('next_run') or '-'}")


def _schedule_status(result: dict[str, Any]) -> tuple[int | None, str]:
    if not result.get("installed"):
        return None, "no scheduled backup installed"
    last = result.get("last") or {}
    state = "" if result.get("present", True) else " (MISSING from the scheduler)"
    when = last.get("finished") or last.get("started")
    last_text = f"last {last.get('result') or '-'} at {when}" if when else "never ran"
    return None, (f"{result.get('scheduler', '?')}{state}, next {result.get('next_run') or '-'}, "
                  f"{last_text}")


def _unschedule(result: dict[str, Any]) -> tuple[int | None, str]:
    removed = result.get("removed") or []
    return None, (f"removed {', '.join(map(str, removed))}" if removed
                  else "no scheduled backup was installed")


COMMANDS: dict[str, FleetCommand] = {
    "setup": FleetCommand("setup", ("remote", "setup", "--json"), (), _setup),
    "backup": FleetCommand("backup", ("remote", "backup", "--json"), (), _backup),
    "schedule": FleetCommand("schedule", ("schedule", "install", "--json"), ("REPO",),
                             _schedule),
    "schedule-status": FleetCommand("schedule-status", ("schedule", "status", "--json"), (),
                                    _schedule_status),
    "unschedule": FleetCommand("unschedule", ("schedule", "remove", "--json"), (), _unschedule),
}
