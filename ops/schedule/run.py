"""The scheduled runs: backup → verify → publish → prune (the shared steps), and the test
restore of the newest backup; each under the one lock, with a stall timeout, a status file and
a notification of how it ended (NOTIFY). The agent's ``scheduled-backup`` and
``scheduled-test-restore`` commands call these with the settings they read.

A notification that cannot be delivered never changes the run's result or exit code: the
status records it (``notify_warning``) and the log gets one line."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ..dburl import DbUrl
from ..engine.results import Progress, ProgressCallback
from ..errors import Interrupted, OpsError, RestoreFailed
from ..notify import Event, Target, send
from ..notify.send import failures_sentence
from ..repository.local import LocalRepository
from ..steps.publish import PublishRequest
from ..steps.results import BackupOutcome, BackupRequest
from .spec import ScheduleRequest, check_test_restore
from .state import read_status, run_lock, update_status, utcnow

HARD_EXIT_GRACE_S = 60.0  # after the stall time, if cancelling did not end the run
HARD_STALL_NOTIFY_TIMEOUT_S = 10.0  # the process is about to end: do not wait long
T = TypeVar("T")


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


def _stall_message(stall_s: float, phase: str, job: str = "backup") -> str:
    if job == "test-restore":
        return (f"The scheduled test restore made no progress for {stall_s / 60:g} minutes "
                f"(during {phase}) and was aborted; its throwaway server and files were "
                "removed. Check that the repository is reachable and the server has room.")
    return (f"The scheduled backup made no progress for {stall_s / 60:g} minutes (during "
            f"{phase}) and was aborted; its partial files were removed and nothing was "
            "published. Check that the database answers (a stopped or locked server) and the "
            "repository is reachable.")


async def with_stall(work: Callable[[ProgressCallback], Awaitable[T]], *, watch: _Watch,
                     progress: ProgressCallback, job: str = "backup") -> T:
    """Run ``work(progress)``; cancel it (its cleanup runs) after STALL without progress."""

    def both(p: Progress) -> None:
        watch.touch(p)
        progress(p)

    task = asyncio.ensure_future(work(both))
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
            raise Stalled(_stall_message(watch.stall_s, watch.phase, job))


async def backup_with_stall(url: DbUrl, staging: LocalRepository, request: BackupRequest, *,
                            host: str, watch: _Watch, progress: ProgressCallback,
                            unsent: LocalRepository | None = None) -> BackupOutcome:
    """``staging`` is the run's private dir (removed after it); a backup whose upload failed
    is kept in ``unsent``."""
    from ..steps.engine_side import backup_and_publish

    return await with_stall(
        lambda p: backup_and_publish(url, staging, request, host=host, progress=p,
                                     drop_local=False, unsent=unsent),
        watch=watch, progress=progress)


def announce(ops_dir: Path, targets: list[Target], event: Event, *,
             timeout: float | None = None, status_key: str | None = None) -> str | None:
    """Send ``event`` to the NOTIFY targets and record the deliveries in the status file
    (under ``status_key`` for the test restore). Returns the warning sentence when a target
    failed — never raises: a notification cannot turn a run into a failure."""
    if not targets:
        return None
    deliveries = send(event, targets, **({"timeout": timeout} if timeout else {}))
    warning = failures_sentence(deliveries)
    record = {"notified": [d.to_dict() for d in deliveries], "notify_warning": warning}
    if status_key is None:
        update_status(ops_dir, **record)
    else:
        update_status(ops_dir, **{status_key: {**read_status(ops_dir).get(status_key, {}),
                                               **record}})
    return warning


def backup_request(schedule: ScheduleRequest, storage_env: dict[str, str]) -> BackupRequest:
    return BackupRequest(publish=PublishRequest(
        repo=schedule.repo, encrypt_to=schedule.encrypt_to, lock_days=schedule.lock_days,
        keep=schedule.keep, storage_env=storage_env))


def _host(schedule: ScheduleRequest) -> str:
    return schedule.host or os.uname().nodename


def run_scheduled_backup(
    ops_dir: Path, schedule: ScheduleRequest, url: DbUrl, storage_env: dict[str, str], *,
    staging: Path, progress: ProgressCallback | None = None,
    notify: list[Target] | None = None, warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One scheduled run under the lock; the status file says how it went (also when it
    failed, stalled or was interrupted) and ``notify`` hears it. Returns the status."""
    from .. import aio

    emit = progress or (lambda _p: None)
    targets = list(notify or [])
    stall_s = float(schedule.stall_minutes) * 60

    def tell(result: str, message: str, details: dict[str, Any] | None = None,
             timeout: float | None = None) -> None:
        event = Event("backup", result, _host(schedule), message, database=url.database,
                      details=details or {})
        warning = announce(ops_dir, targets, event, timeout=timeout)
        if warning and warn is not None:
            warn(warning)

    with run_lock(ops_dir):
        started = utcnow()
        update_status(ops_dir, state="running", pid=os.getpid(), started=started,
                      notified=[], notify_warning=None)

        def hard_stall(w: _Watch) -> None:
            # Cancelling did not end the run (a blocking call): record it, tell, and leave.
            message = _stall_message(w.stall_s, w.phase)
            update_status(ops_dir, state="idle", finished=utcnow(), result="stalled",
                          message=message, pid=None)
            tell("stalled", message, timeout=HARD_STALL_NOTIFY_TIMEOUT_S)
            os._exit(Stalled.exit_code)

        watch = _Watch(stall_s, hard_stall)
        try:
            outcome = aio.run(lambda: backup_with_stall(
                url, LocalRepository(staging), backup_request(schedule, storage_env),
                host=_host(schedule), watch=watch, progress=emit,
                unsent=LocalRepository(ops_dir / "unsent")))
        except Stalled as exc:
            update_status(ops_dir, state="idle", finished=utcnow(), result="stalled",
                          message=exc.message, pid=None)
            tell("stalled", exc.message)
            raise
        except OpsError as exc:
            update_status(ops_dir, state="idle", finished=utcnow(), result="failed",
                          message=str(exc), pid=None)
            tell("failed", str(exc))
            raise
        except BaseException as exc:
            message = f"the run ended with {type(exc).__name__}"
            update_status(ops_dir, state="idle", finished=utcnow(), result="failed",
                          message=message, pid=None)
            tell("failed", message)
            raise
        finally:
            watch.stop()
        pub = outcome.published
        backup = {"name": pub.name if pub else Path(outcome.path).name,
                  "repository": pub.repository if pub else schedule.repo,
                  "size_bytes": outcome.size_bytes, "encrypted": bool(pub and pub.encrypted),
                  "deleted": list(pub.deleted) if pub else [],
                  "duration_s": outcome.duration_s}
        message = (f"{backup['name']}: {outcome.size_bytes} bytes, "
                   f"{len(outcome.tables)} tables, {outcome.total_rows} rows"
                   + (f"; pruned {len(pub.deleted)}" if pub and pub.deleted else ""))
        update_status(ops_dir, state="idle", finished=utcnow(), result="ok", pid=None,
                      message=message, backup=backup)
        tell("ok", message, {"backup": backup})
        return read_status(ops_dir)


def notify_failure(ops_dir: Path, schedule: ScheduleRequest, targets: list[Target],
                   message: str, *, job: str = "backup") -> str | None:
    """Tell NOTIFY about a run that failed before it started (an unreadable env file)."""
    event = Event(job, "failed", _host(schedule), message)
    return announce(ops_dir, targets, event,
                    status_key=None if job == "backup" else "test_restore")


# --- the scheduled test restore -----------------------------------------------------------

def _fetch_latest(repo: Any, database: str, staging: Path) -> Path:
    """The newest backup of ``database`` in ``repo`` as a local file in ``staging``."""
    from ..repository.base import copy_to_file
    from ..repository.verified import list_backups

    found = list_backups(repo, database=database, safety=False).backups
    if not found:
        raise OpsError(f"{repo.url} holds no backup of database {database!r} to test-restore; "
                       "the scheduled backup has not run yet (or failed).")
    name = found[-1].name
    if isinstance(repo, LocalRepository):
        return repo.path_of(name)
    return copy_to_file(repo.open(name), staging / name)


def run_scheduled_test_restore(
    ops_dir: Path, schedule: ScheduleRequest, database: str, storage_env: dict[str, str], *,
    staging: Path, progress: ProgressCallback | None = None,
    notify: list[Target] | None = None, warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Restore the newest backup of ``database`` in the schedule's repository into a
    throwaway PostgreSQL and prove it (rows, sha256 of every table's data, sequences, alembic
    revision), under the lock with the stall timeout; the status file's ``test_restore``
    says how it went and ``notify`` hears it. Refused for an encrypted repository."""
    from .. import aio
    from ..steps.publish import open_target
    from ..steps.restore_test import run_restore_test

    check_test_restore(schedule)
    emit = progress or (lambda _p: None)
    targets = list(notify or [])
    stall_s = float(schedule.stall_minutes) * 60

    def record(**fields: Any) -> None:
        update_status(ops_dir, test_restore={**read_status(ops_dir).get("test_restore", {}),
                                             **fields})

    def tell(result: str, message: str, details: dict[str, Any] | None = None,
             timeout: float | None = None) -> None:
        event = Event("test-restore", result, _host(schedule), message, database=database,
                      details=details or {})
        warning = announce(ops_dir, targets, event, timeout=timeout, status_key="test_restore")
        if warning and warn is not None:
            warn(warning)

    def end(result: str, message: str, **fields: Any) -> None:
        record(state="idle", finished=utcnow(), result=result, message=message, pid=None,
               **fields)

    with run_lock(ops_dir):
        update_status(ops_dir, test_restore={"state": "running", "pid": os.getpid(),
                                             "started": utcnow(), "notified": [],
                                             "notify_warning": None})

        def hard_stall(w: _Watch) -> None:
            message = _stall_message(w.stall_s, w.phase, "test-restore")
            end("stalled", message)
            tell("stalled", message, timeout=HARD_STALL_NOTIFY_TIMEOUT_S)
            os._exit(Stalled.exit_code)

        watch = _Watch(stall_s, hard_stall)

        async def work(p: ProgressCallback) -> Any:
            repo = open_target(PublishRequest(repo=schedule.repo, storage_env=storage_env))
            p(Progress("fetch", message=f"newest backup of {database} in {repo.url}"))
            file = await asyncio.to_thread(_fetch_latest, repo, database, staging)
            return await run_restore_test(file, progress=p)

        try:
            report = aio.run(lambda: with_stall(work, watch=watch, progress=emit,
                                                job="test-restore"))
        except Stalled as exc:
            end("stalled", exc.message)
            tell("stalled", exc.message)
            raise
        except OpsError as exc:
            end("failed", str(exc))
            tell("failed", str(exc))
            raise
        except BaseException as exc:
            message = f"the test restore ended with {type(exc).__name__}"
            end("failed", message)
            tell("failed", message)
            raise
        finally:
            watch.stop()
        name = Path(report.file).name
        summary = {"backup": name, "tables": len(report.tables), "rows": report.rows,
                   "target": report.target, "duration_s": report.duration_s,
                   "problems": report.problems}
        if report.ok:
            message = (f"{name} restored and proved identical: {len(report.tables)} tables, "
                       f"{report.rows} rows, sequences and alembic revision match")
            end("ok", message, report=summary)
            tell("ok", message, {"test_restore": summary})
            return read_status(ops_dir)
        problems = report.problems
        message = (f"The test restore of {name} FAILED: " + "; ".join(problems[:5])
                   + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "") + ".")
        end("failed", message, report=summary)
        tell("failed", message, {"test_restore": summary})
        raise RestoreFailed(message)


__all__ = ["Stalled", "notify_failure", "read_status", "run_scheduled_backup",
           "run_scheduled_test_restore"]
