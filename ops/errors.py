"""One exception tree for everything the toolkit reports to an operator.

    OpsError (exit 1)                 base: one clear sentence in str(exc)
    ├── UsageError (2)                bad input on the command line / Make variables
    ├── ConfigError (3)               env file, DATABASE_URL, settings
    ├── DatabaseError (4)             cannot reach or talk to PostgreSQL
    │   ├── AuthenticationError (5)   bad credentials (never carries the password)
    │   └── BackupYielded (13)       a backup gave way to sessions queued behind its locks
    ├── ArchiveError (6)              backup file is corrupt, truncated or of another format
    │   └── FormatVersionError (7)
    ├── RestoreRefused (8)            a restore was refused before anything changed
    ├── RestoreFailed (9)             a restore failed and was rolled back
    ├── RemoteError (10)              SSH / server-side agent problems
    │   └── HostKeyError (11)         unknown or changed host key
    ├── RepositoryError (12)          the backup repository (dir, S3, GCS) refused or failed
    └── Interrupted (130)             Ctrl-C / SIGTERM; cleanup ran

Convert third-party errors at the boundary: ``raise DatabaseError(...) from exc``.
"""

from __future__ import annotations


class OpsError(Exception):
    """Base class. ``str(exc)`` is the one sentence shown to the operator."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class UsageError(OpsError):
    exit_code = 2


class ConfigError(OpsError):
    exit_code = 3


class DatabaseError(OpsError):
    exit_code = 4


class AuthenticationError(DatabaseError):
    exit_code = 5


class ArchiveError(OpsError):
    exit_code = 6


class FormatVersionError(ArchiveError):
    exit_code = 7


class RestoreRefused(OpsError):
    exit_code = 8


class RestoreFailed(OpsError):
    exit_code = 9


class RemoteError(OpsError):
    exit_code = 10


class HostKeyError(RemoteError):
    exit_code = 11


class RepositoryError(OpsError):
    exit_code = 12


class Interrupted(OpsError):
    exit_code = 130


class BackupYielded(DatabaseError):
    """A backup stopped (and removed its partial file) because sessions queued behind its
    locks; nothing was changed and the caller may retry."""

    exit_code = 13


__all__ = [
    "ArchiveError",
    "AuthenticationError",
    "BackupYielded",
    "ConfigError",
    "DatabaseError",
    "FormatVersionError",
    "HostKeyError",
    "Interrupted",
    "OpsError",
    "RemoteError",
    "RepositoryError",
    "RestoreFailed",
    "RestoreRefused",
    "UsageError",
]
