"""The transport boundary (httpx's ``BaseTransport`` is the model): four operations."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..engine.results import ProgressCallback
from ..policy.live import LiveStatus
from ..repository.local import LocalRepository
from ..steps.results import BackupOutcome, BackupRequest, RestoreOutcome, RestoreRequest


class Transport(Protocol):
    label: str  # the host as the operator knows it (user@host, an alias, "local")
    safety_location: str  # where safety backups are kept, in words

    def status(self) -> LiveStatus:
        """The live database's tables, row counts and alembic revision (changes nothing)."""

    def backup(self, request: BackupRequest, dest: LocalRepository,
               progress: ProgressCallback) -> BackupOutcome:
        """A verified backup file in ``dest`` on the laptop."""

    def restore(self, file: Path, request: RestoreRequest,
                progress: ProgressCallback) -> RestoreOutcome:
        """Safety backup, restore in one transaction, row check — where the engine runs."""
