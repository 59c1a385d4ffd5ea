"""The scheduled run: backup → verify → publish → prune (the shared steps), with a lock, a
stall timeout and a status file. The agent's ``scheduled-backup`` command calls this with the
database URL and storage settings it read."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..dburl import DbUrl
from ..engine.results import Progress, ProgressCallback
from ..errors import Interrupted, OpsError
from ..repository.local import LocalRepository
from ..steps.publish import PublishRequest
from ..steps.results import BackupOutcome, BackupRequest
from .spec import ScheduleRequest
from .state import read_status, run_lock, update_status, utcnow

HARD_EXIT_GRACE_S = 60.0  # after the stall time, if cancelling did not end the run


class Stalled(OpsError):
    """No progress for STALL minutes: the run was aborted and cleaned up."""

    exit_code = 124


class _Watch:
    """When the run last made progress; a thread ends the process if cancelling is stuck
    (a blocking call in a worker thread cannot be cancelled)."""

    def __init__(self, stall_s: float, on_hard_stall: Any) -> None:
        self.stall_s = stall_s
        self.last = time.monotonic()
        self.phase = "start"
        self._done = threading.Event()
        self._on_hard_stall = on_hard_stall
        threading.Thread(target=self._guard, name="stall-guard", daemon=True).start()

    def touch(self, p: Progress) -> None:
        self.last = time.monotonic()
        self.phase = p.phase

    def idle(self) -> float:
        return time.monotonic() - self.last

    def stop(self) -> None:
        self._done.set()

    def _guard(self) -> None:
        while not self._done.wait(1.0):
            if self.idle() > self.stall_s + HARD_EXIT_GRACE_S:
                self._on_hard_stall(self)
                return


def _stall_message(stall_s: float, phase: str) -> str:
    return (f"The scheduled backup made no progress for {stall_s / 60:g} minutes (during "
            f"{phase}) and was aborted; its partial files were removed and nothing was "
            "published. Check that the database answers (a stopped or locked server) and the "
            "repository is reachable.")


async def backup_with_stall(url: DbUrl, staging: LocalRepository, request: BackupRequest, *,
                            host: str, watch: _Watch, progress: ProgressCallback
                            ) -> BackupOutcome:
    from ..steps.engine_side import backup_and_publish

    def both(p: Progress) -> None:
        watch.touch(p)
        progress(p)

    task = asyncio.ensure_future(backup_and_publish(url, staging, request, host=host,
                                                    progress=both))
    while True:
        done, _ = await asyncio.wait({task}, timeout=min(5.0, watch.stall_s / 4))
        if done:
            return task.result()
        if watch.idle() > watch.stall_s:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Interrupted):
                pass
            except OpsError:
                pass
            raise Stalled(_stall_message(watch.stall_s, watch.phase))


def backup_request(schedule: ScheduleRequest, storage_env: dict[str, str]) -> BackupRequest:
    return BackupRequest(publish=PublishRequest(
        repo=schedule.repo, encrypt_to=schedule.encrypt_to, lock_days=schedule.lock_days,
        keep=schedule.keep, storage_env=storage_env))


def run_scheduled_backup(
    ops_dir: Path, schedule: ScheduleRequest, url: DbUrl, storage_env: dict[str, str], *,
    staging: Path, progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """One scheduled run under the lock; the status file says how it went (also when it
    failed, stalled or was interrupted). Returns the status."""
    from .. import aio

    emit = progress or (lambda _p: None)
    stall_s = float(schedule.stall_minutes) * 60
    with run_lock(ops_dir):
        started = utcnow()
        update_status(ops_dir, state="running", pid=os.getpid(), started=started)

        def hard_stall(w: _Watch) -> None:
            # Cancelling did not end the run (a blocking call): record it and leave.
            update_status(ops_dir, state="idle", finished=utcnow(), result="stalled",
                          message=_stall_message(w.stall_s, w.phase), pid=None)
            os._exit(Stalled.exit_code)

        watch = _Watch(stall_s, hard_stall)
        try:
            outcome = aio.run(lambda: backup_with_stall(
                url, LocalRepository(staging), backup_request(schedule, storage_env),
                host=schedule.host or os.uname().nodename, watch=watch, progress=emit))
        except Stalled as exc:
            update_status(ops_dir, state="idle", finished=utcnow(), result="stalled",
                          message=exc.message, pid=None)
            raise
        except OpsError as exc:
            update_status(ops_dir, state="idle", finished=utcnow(), result="failed",
                          message=str(exc), pid=None)
            raise
        except BaseException as exc:
            update_status(ops_dir, state="idle", finished=utcnow(), result="failed",
                          message=f"the run ended with {type(exc).__name__}", pid=None)
            raise
        finally:
            watch.stop()
        pub = outcome.published
        return update_status(
            ops_dir, state="idle", finished=utcnow(), result="ok", pid=None,
            message=(f"{pub.name if pub else outcome.path}: {outcome.size_bytes} bytes, "
                     f"{len(outcome.tables)} tables, {outcome.total_rows} rows"
                     + (f"; pruned {len(pub.deleted)}" if pub and pub.deleted else "")),
            backup={"name": pub.name if pub else Path(outcome.path).name,
                    "repository": pub.repository if pub else schedule.repo,
                    "size_bytes": outcome.size_bytes, "encrypted": bool(pub and pub.encrypted),
                    "deleted": list(pub.deleted) if pub else [],
                    "duration_s": outcome.duration_s},
        )


__all__ = ["Stalled", "read_status", "run_scheduled_backup"]
