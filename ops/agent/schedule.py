"""The agent's schedule commands: install / remove / status / test-notify (driven from the
laptop by ``make schedule-ops | unschedule-ops | schedule-status``) and ``scheduled-backup`` /
``scheduled-test-restore``, the commands a systemd timer or a crontab entry runs on the
server. NOTIFY's URLs arrive on stdin and live in a 0600 file, like the storage keys."""

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
    from dataclasses import replace

    from ..notify import parse_targets
    from ..schedule import host
    from ..schedule.spec import ScheduleRequest
    from ..steps.publish import STORAGE_ENV

    msg = inbox.wait(timeout=60)
    request = ScheduleRequest.from_dict(msg.get("request") or {})
    env = msg.get("storage_env") or {}
    storage_env = {k: str(v) for k, v in env.items() if k in STORAGE_ENV and v}
    notify = str(msg.get("notify") or "")
    targets = parse_targets(notify)  # apprise is here too: the server sends them
    request = replace(request, notify=tuple(t.label for t in targets))
    # A schedule that cannot work is refused now, before anything is installed: the database,
    # the backup directory (as this user: the runs' user) or the repository, with the storage
    # settings a run will have.
    from ..schedule.preflight import prove_runnable

    url = read_database_url(Path(request.env_file))
    run_env = {**_server_storage_env(Path(request.repo_env_file or request.env_file)),
               **storage_env}
    prove_runnable(request.repo, run_env, url)
    installed = host.install(Path(args.ops_dir), request, storage_env, notify)
    return {"installed": installed.to_dict(), "storage_env": sorted(storage_env),
            "notify": list(request.notify), "test_restore": request.test_restore}


def cmd_schedule_remove(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..schedule import host

    return {"removed": host.remove(Path(args.ops_dir))}


def cmd_schedule_status(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..schedule import host

    return {"schedule": host.status(Path(args.ops_dir))}


def cmd_schedule_run_now(args: argparse.Namespace, out: Emitter, inbox: Inbox
                         ) -> dict[str, Any]:
    """Run the scheduled backup once, now, as its scheduler would (``make schedule-run-ops``),
    then the schedule's status with its verdict."""
    from ..schedule import host

    ops_dir = Path(args.ops_dir)
    out.log("running the scheduled backup now, as its scheduler would")
    ran = host.run_now(ops_dir)
    return {"run": ran, "schedule": host.status(ops_dir)}


def _server_storage_env(repo_env_file: Path) -> dict[str, str]:
    """The storage settings of the server's REPO_ENV_FILE (none when it cannot be read)."""
    from ..steps.publish import storage_settings

    try:
        return storage_settings(read_env_text(repo_env_file))
    except OpsError:
        return {}


def _storage_env(ops_dir: Path, repo_env_file: Path) -> dict[str, str]:
    """The server's REPO_ENV_FILE settings overlaid with the schedule's own 0600 file."""
    from ..schedule.state import SECRETS
    from ..steps.publish import storage_settings

    server = _server_storage_env(repo_env_file)
    own = ops_dir / "schedule" / SECRETS
    return {**server, **(storage_settings(own.read_text()) if own.exists() else {})}


def _notify_targets(ops_dir: Path, out: Emitter) -> list[Any]:
    """The schedule's NOTIFY targets (from its 0600 file); a damaged value is logged, not
    fatal: the run itself must still happen."""
    from ..notify import parse_targets
    from ..schedule.state import load_notify

    try:
        return parse_targets(load_notify(ops_dir))
    except OpsError as exc:
        out.log(f"warning: no notification will be sent: {exc}")
        return []


def _phase_logger(out: Emitter) -> Any:
    last = {"phase": ""}

    def phases(p: Progress) -> None:  # one log line per phase: a readable cron log
        if p.phase != last["phase"]:
            last["phase"] = p.phase
            out.log(f"{p.phase}: {p.message or ''}".rstrip(": "))

    return phases


def _warn(out: Emitter) -> Any:
    return lambda sentence: out.log(f"warning: {sentence}")


def cmd_scheduled_backup(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """backup → verify → publish → prune, never two at once, aborted after STALL minutes
    without progress; the status file records the result (schedule-status shows it) and
    NOTIFY hears it (an undeliverable notification is a warning, never a failed run)."""
    from ..schedule.run import notify_failure, run_scheduled_backup
    from ..schedule.state import load_config, update_status, utcnow

    ops_dir = Path(args.ops_dir)
    schedule = load_config(ops_dir)
    targets = _notify_targets(ops_dir, out)
    env_file = Path(os.environ.get("MMOPS_SCHEDULE_ENV_FILE") or schedule.env_file)
    try:
        url = read_database_url(env_file)
        storage_env = _storage_env(ops_dir, Path(schedule.repo_env_file or env_file))
    except OpsError as exc:
        update_status(ops_dir, state="idle", started=utcnow(), finished=utcnow(),
                      result="failed", message=str(exc), pid=None)
        warning = notify_failure(ops_dir, schedule, targets, str(exc))
        if warning:
            out.log(f"warning: {warning}")
        raise
    with private_tmpdir(ops_dir, "scheduled-") as tmp:
        status = run_scheduled_backup(ops_dir, schedule, url, storage_env, staging=tmp,
                                      progress=_phase_logger(out), notify=targets,
                                      warn=_warn(out))
    return {"status": status}


def cmd_scheduled_test_restore(args: argparse.Namespace, out: Emitter, inbox: Inbox
                               ) -> dict[str, Any]:
    """TEST_RESTORE: the newest backup of the app's database, restored into a throwaway
    PostgreSQL on this server and proved; refused for an encrypted repository (the server
    holds only public keys). Result in the status file's ``test_restore`` and to NOTIFY."""
    from ..engine.backup import safe_database_name
    from ..schedule.run import notify_failure, run_scheduled_test_restore
    from ..schedule.state import load_config, update_status, utcnow

    ops_dir = Path(args.ops_dir)
    schedule = load_config(ops_dir)
    targets = _notify_targets(ops_dir, out)
    env_file = Path(os.environ.get("MMOPS_SCHEDULE_ENV_FILE") or schedule.env_file)
    try:
        from ..schedule.spec import check_test_restore

        check_test_restore(schedule)
        database = safe_database_name(read_database_url(env_file).database)
        storage_env = _storage_env(ops_dir, Path(schedule.repo_env_file or env_file))
    except OpsError as exc:
        update_status(ops_dir, test_restore={"state": "idle", "started": utcnow(),
                                             "finished": utcnow(), "result": "failed",
                                             "message": str(exc), "pid": None})
        warning = notify_failure(ops_dir, schedule, targets, str(exc), job="test-restore")
        if warning:
            out.log(f"warning: {warning}")
        raise
    with private_tmpdir(ops_dir, "test-restore-") as tmp:
        status = run_scheduled_test_restore(ops_dir, schedule, database, storage_env,
                                            staging=tmp, progress=_phase_logger(out),
                                            notify=targets, warn=_warn(out))
    return {"status": status}


def cmd_schedule_test_notify(args: argparse.Namespace, out: Emitter, inbox: Inbox
                             ) -> dict[str, Any]:
    """A test notification from the server to the schedule's NOTIFY targets: proves they are
    reachable from where the scheduled runs send. The deliveries are the result (the laptop
    renders them and fails when one did)."""
    from ..notify import Event, send
    from ..schedule.state import load_config

    ops_dir = Path(args.ops_dir)
    schedule = load_config(ops_dir)
    targets = _notify_targets(ops_dir, out)
    if not targets:
        raise OpsError("The installed schedule has no NOTIFY targets; run `make schedule-ops "
                       "NOTIFY=…` (NOTIFY in the environment) first.")
    host = schedule.host or os.uname().nodename
    deliveries = send(Event("test", "test", host, f"mmops on {host} can reach this target: "
                            "scheduled runs will notify here."), targets)
    return {"deliveries": [d.to_dict() for d in deliveries]}


SCHEDULE_COMMANDS = {
    "schedule-install": cmd_schedule_install,
    "schedule-remove": cmd_schedule_remove,
    "schedule-run-now": cmd_schedule_run_now,
    "schedule-status": cmd_schedule_status,
    "schedule-test-notify": cmd_schedule_test_notify,
    "scheduled-backup": cmd_scheduled_backup,
    "scheduled-test-restore": cmd_scheduled_test_restore,
}
