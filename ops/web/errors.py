"""Our exception tree (exit codes) mapped to HTTP statuses; the page shows ``str(exc)``."""

from __future__ import annotations

from ..errors import (
    ArchiveError,
    AuthenticationError,
    BackupYielded,
    ConfigError,
    DatabaseError,
    Interrupted,
    OpsError,
    RemoteError,
    RepositoryError,
    RestoreFailed,
    RestoreRefused,
    UsageError,
)


class Busy(OpsError):
    """Another backup or restore is running (one at a time: they would compete for locks)."""


class NoSuchBackup(RepositoryError):
    """The page was asked for a backup its repository does not hold (404: nothing failed)."""


# Most specific first (AuthenticationError and BackupYielded are DatabaseErrors).
_STATUS: tuple[tuple[type[OpsError], int], ...] = (
    (Busy, 409),
    (NoSuchBackup, 404),
    (UsageError, 400),  # exit 2
    (ConfigError, 500),  # 3: the server's own configuration
    (AuthenticationError, 502),  # 5: the database refused our credentials
    (BackupYielded, 503),  # 13: retry
    (DatabaseError, 502),  # 4: database unreachable
    (ArchiveError, 422),  # 6, 7: the file is corrupt, truncated or of another version
    (RestoreRefused, 409),  # 8: refused before anything changed
    (RestoreFailed, 500),  # 9
    (RemoteError, 502),  # 10, 11
    (RepositoryError, 507),  # 12
    (Interrupted, 503),  # 130
)


def http_status(exc: OpsError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


UNEXPECTED = (
    "Something unexpected went wrong; the server's log has the details. Every backup and "
    "restore runs in one transaction, so the database is as it was unless a restore "
    "reported that it finished."
)
