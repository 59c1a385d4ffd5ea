"""markdown-manager-ops: backup and restore for markdown-manager's PostgreSQL database.

The public Python API (the CLI `mmops` is built on it)::

    from ops import backup, restore, plan_restore, verify_archive, read_manifest, RestoreMode
"""

from __future__ import annotations

from ._version import __version__
from .archive import read_manifest, verify_archive
from .engine.backup import backup
from .engine.restore import plan_restore, restore
from .engine.results import BackupResult, RestoreMode, RestorePlan, RestoreResult
from .errors import OpsError

__all__ = [
    "BackupResult",
    "OpsError",
    "RestoreMode",
    "RestorePlan",
    "RestoreResult",
    "__version__",
    "backup",
    "plan_restore",
    "read_manifest",
    "restore",
    "verify_archive",
]
