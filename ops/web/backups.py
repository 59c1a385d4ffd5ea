"""The backups the page lists, downloads and restores: one repository behind one function.

``open_backup_repository`` is the plug: the repository named by ``--repo`` (a directory, S3,
GCS; opened by the same ``open_target`` as the CLI's publish step, with the storage settings
of ``REPO_ENV_FILE``), or else the local backup directory. New backups are taken into a local
staging directory first (``--backup-dir``, a local ``--repo``, or the private work dir) and
published from there by the CLI's own ``backup_and_publish``; safety backups stay local.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..repository import check_repository_spec
from ..repository.base import Entry, ReadAt, Repository, backups, parse_backup_name
from ..repository.local import LocalRepository
from ..steps.publish import PublishRequest, describe_stored, open_target
from .errors import NoSuchBackup
from .settings import WebSettings
from .workspace import Workspace

PLACES = ("backups", "safety")
META_READERS = 8  # sidecars fetched at once from an object store (each is one small GET)


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
    downloaded or decrypted to be listed. What was read is remembered (names never repeat)."""

    def __init__(self, repo: Repository, staging: LocalRepository) -> None:
        self.repos: dict[str, Repository] = {"backups": repo,
                                             "safety": safety_repository(staging)}
        self._known: dict[tuple[str, str, int], tuple[str | None, bool]] = {}

    @property
    def url(self) -> str:
        return self.repos["backups"].url

    def rows(self, place: str) -> list[BackupRow]:
        repo = self.repos[place]
        found = backups(repo, safety=(place == "safety"))
        todo = [entry for entry, _info in found
                if (place, entry.name, entry.size) not in self._known]
        if todo:
            with ThreadPoolExecutor(min(META_READERS, len(todo))) as pool:
                described = pool.map(lambda e: self._describe(repo, e), todo)
                for entry, fields in zip(todo, described, strict=True):
                    if fields is not None:
                        self._known[(place, entry.name, entry.size)] = fields
        rows = []
        for entry, info in reversed(found):
            revision, readable = self._known.get((place, entry.name, entry.size), (None, True))
            rows.append(BackupRow(entry.name, place, info.database, info.created_at,
                                  entry.size, revision, info.encrypted, readable))
        return rows

    @staticmethod
    def _describe(repo: Repository, entry: Entry) -> tuple[str | None, bool] | None:
        """(alembic revision, readable), or None when nothing lasting is known yet."""
        facts = describe_stored(repo, entry.name)
        return None if facts is None else (facts.alembic_revision, facts.readable)

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
