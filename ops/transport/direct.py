"""The engine in this process, the database at DATABASE_URL (``mmops backup|restore``); the
tunnel transport is this one with the URL pointed at its forward."""

from __future__ import annotations

from pathlib import Path

from .. import aio
from ..dburl import DbUrl
from ..engine.results import ProgressCallback
from ..policy.live import LiveStatus
from ..repository.local import LocalRepository
from ..steps.engine_side import backup_and_publish, restore_from
from ..steps.results import BackupOutcome, BackupRequest, RestoreOutcome, RestoreRequest
from ..steps.status import read_live_status


class DirectTransport:
    def __init__(self, url: DbUrl, safety_dir: Path, *, label: str | None = None) -> None:
        self.url = url
        self.safety = LocalRepository(safety_dir)
        self.label = label or (url.host or "localhost")
        self.safety_location = f"{safety_dir} (here)"

    def status(self) -> LiveStatus:
        return aio.run(lambda: read_live_status(self.url))

    def cleanup(self) -> list[str]:
        """Partial safety backups of killed runs (``backup_into`` cleans the backup dir)."""
        return [str(p) for p in self.safety.remove_stale_partials()]

    def backup(self, request: BackupRequest, dest: LocalRepository,
               progress: ProgressCallback) -> BackupOutcome:
        cleaned = self.cleanup()
        outcome = aio.run(lambda: backup_and_publish(self.url, dest, request, host=self.label,
                                                     progress=progress))
        outcome.cleaned[:0] = cleaned
        return outcome

    def restore(self, file: Path, request: RestoreRequest,
                progress: ProgressCallback) -> RestoreOutcome:
        self.cleanup()
        return aio.run(lambda: restore_from(self.url, file, request, self.safety,
                                            host=self.label, progress=progress))
