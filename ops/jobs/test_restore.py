"""``mmops verify --restore-test``: find and fetch the backup to test (a file, or NAME/latest in
a repository, decrypted with the identity), then the test restore itself — written once, in
``steps/restore_test.py``, which the server's scheduled test restore runs too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..steps.restore_test import (
    RestoreTestReport,
    SequenceCheck,
    TableCheck,
    choose_bindir,
    prove_restore,
    recreate_scratch,
    run_restore_test,
    throwaway_server,
)


def latest_in_repository(repo: Any, database: str | None) -> tuple[str, str]:
    """(name, database) of the newest non-safety backup in ``repo`` (of ``database``)."""
    from ..repository.verified import list_backups

    listing = list_backups(repo, database=database, safety=False)
    if not listing.backups:
        what = f" of database {database!r}" if database else ""
        raise UsageError(f"{repo.url} holds no verified backup{what} to test-restore.")
    newest = listing.backups[-1]
    return newest.name, newest.info.database


def fetch_for_restore_test(
    spec: str, repo_spec: str | None, *, database: str | None, identity: str | None,
    workdir: Path,
) -> Path:
    """The local file to test-restore: FILE, or NAME/latest in the repository (downloaded and
    decrypted into ``workdir``, a private dir the caller removes)."""
    from ..repository import open_repository
    from ..repository.local import LocalRepository
    from .restore import resolve_backup_file

    if repo_spec is None:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"Backup file {spec} does not exist (use --repo R for NAME/latest).")
        return resolve_backup_file(spec, LocalRepository(path.parent), "", workdir=workdir,
                                   identity=identity)
    repo = open_repository(repo_spec)
    if spec == "latest":
        spec, database = latest_in_repository(repo, database)
    return resolve_backup_file(spec, repo, database or "", workdir=workdir, identity=identity)


__all__ = [
    "RestoreTestReport", "SequenceCheck", "TableCheck", "choose_bindir", "fetch_for_restore_test",
    "latest_in_repository", "prove_restore", "recreate_scratch", "run_restore_test",
    "throwaway_server",
]
