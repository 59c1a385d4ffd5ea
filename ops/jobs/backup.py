"""backup → verify → publish: the same workflow over every transport."""

from __future__ import annotations

from ..engine.results import ProgressCallback
from ..repository.local import LocalRepository
from ..steps.results import BackupOutcome, BackupRequest
from ..transport.base import Transport


def run_backup(
    transport: Transport, dest: LocalRepository, request: BackupRequest,
    progress: ProgressCallback,
) -> BackupOutcome:
    """A verified backup of the transport's database in ``dest`` (0700 dir, 0600 file)."""
    dest.ensure()
    return transport.backup(request, dest, progress)
