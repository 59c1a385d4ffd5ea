"""The agent's schedule commands: install / remove / status (driven from the laptop by
``make schedule-ops | unschedule-ops | schedule-status``) and ``scheduled-backup``, the one
command a systemd timer or a crontab entry runs on the server."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..engine.results import Progress
from ..errors import OpsError
from .envfile import read_database_url, read_env_text
from .protocol import Emitter, Inbox
from .workspace import private_tmpdir


def cmd_schedule_install(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """The request (and storage keys, on stdin only) → config + 0600 secrets → scheduler."""
    from ..schedule import host
    from ..schedule.spec import ScheduleRequest
    from ..steps.publish import STORAGE_ENV

    msg = inbox.wait(timeout=60)
    request = ScheduleRequest.from_dict(msg.get("request") or {})
    env = msg.get("storage_env") or {}
    storage_env = {k: str(v) for k, v in env.items() if k in STORAGE_ENV and v}
    read_database_url(Path(request.env_file))  # a schedule that cannot work is refused now
    installed = host.install(Path(args.ops_dir), request, storage_env)
    return {"installed": installed.to_dict(), "storage_env": sorted(storage_env)}


def cmd_schedule_remove(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..schedule import host

    return {"removed": host.remove(Path(args.ops_dir))}


def cmd_schedule_status(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..schedule import host

    return {"schedule": host.status(Path(args.ops_dir))}


def _storage_env(ops_dir: Path, repo_env_file: Path) -> dict[str, str]:
    """The server's REPO_ENV_FILE settings overlaid with the schedule's own 0600 file."""
    from ..schedule.state import SECRETS
    from ..steps.publish import storage_settings

    try:
        server = storage_settings(read_env_text(repo_env_file))
    except OpsError:
        server = {}
    own = ops_dir / "schedule" / SECRETS
    return {**server, **(storage_settings(own.read_text()) if own.exists() else {})}


def cmd_scheduled_backup(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """backup → verify → publish → prune, never two at once, aborted after STALL minutes
    without progress; the status file records the result (schedule-status shows it)."""
    from ..schedule.run import run_scheduled_backup
    from ..schedule.state import load_config, update_status, utcnow

    ops_dir = Path(args.ops_dir)
    schedule = load_config(ops_dir)
    env_file = Path(os.environ.get("MMOPS_SCHEDULE_ENV_FILE") or schedule.env_file)
    try:
        url = read_database_url(env_file)
        storage_env = _storage_env(ops_dir, Path(schedule.repo_env_file or env_file))
    except OpsError as exc:
        update_status(ops_dir, state="idle", started=utcnow(), finished=utcnow(),
                      result="failed", message=str(exc), pid=None)
        raise
    last = {"phase": ""}

    def phases(p: Progress) -> None:  # one log line per phase: a readable cron log
        if p.phase != last["phase"]:
            last["phase"] = p.phase
            out.log(f"{p.phase}: {p.message or ''}".rstrip(": "))

    with private_tmpdir(ops_dir, "scheduled-") as tmp:
        status = run_scheduled_backup(ops_dir, schedule, url, storage_env, staging=tmp,
                                      progress=phases)
    return {"status": status}


SCHEDULE_COMMANDS = {
    "schedule-install": cmd_schedule_install,
    "schedule-remove": cmd_schedule_remove,
    "schedule-status": cmd_schedule_status,
    "scheduled-backup": cmd_scheduled_backup,
}
