"""Backups and restores run one at a time in a worker thread; the page follows their progress.

The engine's jobs are synchronous (``aio.run`` has an event loop of its own), so each runs in
its own thread while the web server's loop keeps serving. A browser with JavaScript polls the
job; without JavaScript the request waits for it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.results import Progress, ProgressCallback
from ..errors import OpsError
from .errors import UNEXPECTED, Busy, http_status

log = logging.getLogger("ops.web")
KEEP_FINISHED = 20


@dataclass
class Job:
    id: str
    kind: str  # backup | restore
    owner: str  # the session that started it
    state: str = "running"  # running | done | failed
    current: str = "starting"
    phases: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    status_code: int = 200
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, event: Progress) -> None:
        text = describe_progress(event)
        with self._lock:
            self.current = text
            if not self.phases or not self.phases[-1].startswith(event.phase + ":"):
                self.phases.append(text)
            else:
                self.phases[-1] = text

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"state": self.state, "current": self.current, "phases": list(self.phases),
                    "error": self.error}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def describe_progress(event: Progress) -> str:
    what = event.message or event.item or ""
    if event.total:
        what = f"{what} {_size(event.done)} of {_size(event.total)}".strip()
    elif event.done:
        what = f"{what} {_size(event.done)}".strip()
    return f"{event.phase}: {what}" if what else event.phase


class JobRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._running: Job | None = None

    def _check_idle(self) -> None:
        running = self._running
        if running is not None and not running.done.is_set():
            raise Busy(f"A {running.kind} is already running; try again when it ends; "
                       "nothing was changed.")

    def check_idle(self) -> None:
        """Busy when a job is running (so a request can stop before its upload is read)."""
        with self._lock:
            self._check_idle()

    def start(self, kind: str, owner: str, work: Callable[[ProgressCallback], Any]) -> Job:
        with self._lock:
            self._check_idle()
            job = Job(secrets.token_urlsafe(16), kind, owner)
            self._jobs[job.id] = job
            self._running = job
            finished = [j for j in self._jobs.values() if j.done.is_set()]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[old.id]
        thread = threading.Thread(target=self._run, args=(job, work), name=f"mmops-web-{kind}",
                                  daemon=True)
        thread.start()
        return job

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for the running job (if any) to end; False when ``timeout`` passed first."""
        job = self._running
        return job is None or job.done.wait(timeout)

    def get(self, job_id: str, owner: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    @staticmethod
    def _run(job: Job, work: Callable[[ProgressCallback], Any]) -> None:
        try:
            job.result = work(job.progress)
            job.state = "done"
        except OpsError as exc:
            job.error, job.status_code, job.state = str(exc), http_status(exc), "failed"
            log.warning("%s failed: %s", job.kind, exc)
        except Exception:
            job.error, job.status_code, job.state = UNEXPECTED, 500, "failed"
            log.exception("%s failed unexpectedly", job.kind)
        finally:
            job.done.set()
