"""The backups the page lists, downloads and restores: one repository behind one function.

``open_backup_repository`` is the plug: the repository named by ``--repo`` (a directory, S3,
GCS; opened by the same ``open_target`` as the CLI's publish step, with the storage settings
of ``REPO_ENV_FILE``), or else the local backup directory. New backups are taken into a local
staging directory first (``--backup-dir``, a local ``--repo``, or the private work dir) and
published from there by the CLI's own ``backup_and_publish``; safety backups stay local.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..repository import check_repository_spec
from ..repository.base import ReadAt, Repository, parse_backup_name
from ..repository.local import LocalRepository
from ..repository.verified import StoredBackup, Unverified, Verdict, list_backups
from ..steps.publish import PublishRequest, open_target
from .errors import NoSuchBackup
from .settings import WebSettings
from .workspace import Workspace

PLACES = ("backups", "safety")


def publish_request(settings: WebSettings, staging: LocalRepository) -> PublishRequest | None:
    """Where a new backup goes besides the staging directory (None: it stays there), exactly
    as ``mmops backup --repo R --encrypt-to K`` would be told."""
    if not settings.repo and not settings.encrypt_to:
        return None
    return PublishRequest(repo=settings.repo or str(staging.path),
                          encrypt_to=settings.encrypt_to, storage_env=settings.storage_env)


def staging_repository(settings: WebSettings, workspace: Workspace) -> LocalRepository:
    """The local directory backups are taken into (and safety backups kept below)."""
    if settings.backup_dir is not None:
        return LocalRepository(settings.backup_dir).ensure()
    if settings.repo and check_repository_spec(settings.repo) == "dir":
        return LocalRepository(Path(settings.repo).expanduser()).ensure()
    return LocalRepository(workspace.subdir("backups"))


def open_backup_repository(settings: WebSettings, staging: LocalRepository) -> Repository:
    """Where the list comes from and where new backups are stored."""
    request = publish_request(settings, staging)
    if request is None or not settings.repo:
        return staging
    return open_target(request)


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
    """Lists the backups with what their sidecars (``NAME.meta.json``, written by the publish
    step) or — for a plain local file without one — their manifests say: no backup is ever
    downloaded or decrypted to be listed. Only verified backups (``repository.verified``) are
    listed as readable; a file that merely has a backup's name is listed as unreadable. What
    was read is remembered (names never repeat)."""

    def __init__(self, repo: Repository, staging: LocalRepository) -> None:
        self.repos: dict[str, Repository] = {"backups": repo,
                                             "safety": safety_repository(staging)}
        self._known: dict[str, dict[tuple[str, int, int], Verdict]] = {p: {} for p in PLACES}

    @property
    def url(self) -> str:
        return self.repos["backups"].url

    def rows(self, place: str) -> list[BackupRow]:
        listing = list_backups(self.repos[place], safety=(place == "safety"),
                               known=self._known[place])
        items: list[StoredBackup | Unverified] = [*listing.backups, *listing.unverified]
        items.sort(key=lambda i: (i.info.created_at, i.name), reverse=True)
        return [BackupRow(i.name, place, i.info.database, i.info.created_at, i.entry.size,
                          i.alembic_revision if isinstance(i, StoredBackup) else None,
                          i.info.encrypted, isinstance(i, StoredBackup))
                for i in items]

    def check(self, place: str, name: str) -> Repository:
        """The repository holding the listed backup ``name``; NoSuchBackup otherwise."""
        repo = self.repos.get(place)
        if repo is None or "/" in name or parse_backup_name(name) is None:
            raise NoSuchBackup(f"{name!r} is not a backup of this server.")
        if name not in {e.name for e in repo.list(name)}:
            raise NoSuchBackup(f"Backup {name} does not exist (any more).")
        return repo

    def open(self, place: str, name: str) -> ReadAt:
        """A listed backup opened for reading by offset (local file or object store)."""
        return self.check(place, name).open(name)
