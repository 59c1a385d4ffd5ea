"""The backups the page lists, downloads and restores: one repository behind one function.

``open_backup_repository`` is the plug: today a local directory (``--backup-dir``, or the
private work dir while the server runs); a repository given by ``--repo`` (S3, GCS, age
encryption — issue 9) is meant to be returned from here without the routes changing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..errors import OpsError, RepositoryError
from ..repository.base import backups, parse_backup_name
from ..repository.local import LocalRepository
from .settings import WebSettings
from .workspace import Workspace

PLACES = ("backups", "safety")


def open_backup_repository(settings: WebSettings, workspace: Workspace) -> LocalRepository:
    """Where new backups go and where the list comes from."""
    if settings.backup_dir is not None:
        return LocalRepository(settings.backup_dir).ensure()
    return LocalRepository(workspace.subdir("backups"))


def safety_repository(repo: LocalRepository) -> LocalRepository:
    """Safety backups taken before each restore: ``safety/`` below the backups (as the CLI)."""
    return LocalRepository(repo.path / "safety")


@dataclass(frozen=True)
class BackupRow:
    name: str
    place: str  # backups | safety
    database: str
    created_at: dt.datetime
    size: int
    alembic_revision: str | None
    encrypted: bool
    readable: bool  # False: the manifest could not be read (damaged file)


class BackupCatalog:
    """Lists the repository's backups with what their manifests say (read once per file)."""

    def __init__(self, repo: LocalRepository) -> None:
        self.repos = {"backups": repo, "safety": safety_repository(repo)}
        self._manifests: dict[tuple[str, str, int], str | None] = {}

    def rows(self, place: str) -> list[BackupRow]:
        repo = self.repos[place]
        found = []
        for entry, info in reversed(backups(repo, safety=(place == "safety"))):
            revision, readable = None, True
            if not info.encrypted:
                try:
                    revision = self._revision(repo, entry.name, entry.size)
                except OpsError:
                    readable = False
            found.append(BackupRow(entry.name, place, info.database, info.created_at,
                                   entry.size, revision, info.encrypted, readable))
        return found

    def _revision(self, repo: LocalRepository, name: str, size: int) -> str | None:
        key = (str(repo.path), name, size)
        if key not in self._manifests:
            from ..archive import read_manifest

            self._manifests[key] = read_manifest(repo.path_of(name)).get("alembic_revision")
        return self._manifests[key]

    def path_of(self, place: str, name: str) -> Path:
        """The file of a listed backup; RepositoryError for anything else."""
        repo = self.repos.get(place)
        if repo is None or parse_backup_name(name) is None:
            raise RepositoryError(f"{name!r} is not a backup of this server.")
        path = repo.path_of(name)
        if not path.is_file():
            raise RepositoryError(f"Backup {name} does not exist (any more).")
        return path
