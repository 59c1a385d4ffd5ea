"""The schedule's files on the server, all in ``OPS_DIR/schedule`` (0700):

  * ``schedule.json`` — the ScheduleRequest (no secrets), 0600;
  * ``storage.env``   — storage keys for the scheduled run (dotenv), 0600; never in a unit file,
                        a crontab or argv;
  * ``notify.env``    — ``NOTIFY=`` (the notification URLs, which may hold tokens), 0600, same;
  * ``status.json``   — the last run: started, finished, result, message, backup; 0600;
  * ``run.lock``      — held (flock) by the one run in progress.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OpsError
from .spec import ScheduleRequest

CONFIG, SECRETS, NOTIFY, STATUS, LOCK, LOG = (
    "schedule.json", "storage.env", "notify.env", "status.json", "run.lock", "cron.log")


def schedule_dir(ops_dir: Path) -> Path:
    path = ops_dir / "schedule"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with a 0600 file (created 0600, never wider)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dotenv_text(values: dict[str, str]) -> str:
    """KEY='value' lines python-dotenv reads back exactly (single quotes: no expansion)."""
    lines = []
    for key, value in sorted(values.items()):
        if "'" in value or "\n" in value:
            raise ConfigError(f"The setting {key} holds a quote or a newline; it cannot "
                              "be written to the schedule's env file.")
        lines.append(f"{key}='{value}'")
    return "\n".join(lines) + ("\n" if lines else "")


def save_config(ops_dir: Path, request: ScheduleRequest, storage_env: dict[str, str],
                notify: str = "") -> None:
    d = schedule_dir(ops_dir)
    write_private(d / CONFIG, json.dumps(request.to_dict(), indent=2, sort_keys=True) + "\n")
    write_private(d / SECRETS, dotenv_text(storage_env))
    notify = " ".join(notify.split())  # one line: URLs separated by single spaces
    if notify:
        write_private(d / NOTIFY, dotenv_text({"NOTIFY": notify}))
    else:
        (d / NOTIFY).unlink(missing_ok=True)


def load_notify(ops_dir: Path) -> str:
    """The schedule's NOTIFY value ("" when none): read from its 0600 file, never from argv."""
    from dotenv import dotenv_values

    path = ops_dir / "schedule" / NOTIFY
    if not path.exists():
        return ""
    return str(dotenv_values(path, interpolate=False).get("NOTIFY") or "")


def load_config(ops_dir: Path) -> ScheduleRequest:
    path = ops_dir / "schedule" / CONFIG
    try:
        return ScheduleRequest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ConfigError(f"No schedule is installed here ({path} is missing).",
                          hint="Run `make schedule-ops` first.") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"The schedule's configuration {path} is damaged; run "
                          "`make schedule-ops` again.") from exc


def read_status(ops_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((ops_dir / "schedule" / STATUS).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def update_status(ops_dir: Path, **fields: Any) -> dict[str, Any]:
    status = {**read_status(ops_dir), **fields}
    write_private(schedule_dir(ops_dir) / STATUS,
                  json.dumps(status, indent=2, sort_keys=True, default=str) + "\n")
    return status


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def run_lock(ops_dir: Path) -> Iterator[None]:
    """Hold the schedule's lock for the run, or refuse at once: never two runs at the same
    time (a slow run past the next calendar time, a manual run during the timer's)."""
    path = schedule_dir(ops_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
            raise OpsError(
                f"Another scheduled backup is still running (pid {holder}); this run did "
                "nothing. If it hangs, it is aborted after STALL minutes without progress."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
