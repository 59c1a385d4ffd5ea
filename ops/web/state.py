"""Everything one running page holds, created once by ``create_app`` (``app.state.web``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..repository.base import Repository
from ..repository.local import LocalRepository
from ..steps.publish import PublishRequest
from ..transport.direct import DirectTransport
from .backups import (
    BackupCatalog,
    open_backup_repository,
    publish_request,
    safety_repository,
    staging_repository,
)
from .passwords import PasswordChecks
from .ratelimit import LoginLimiter
from .reviews import ReviewStore
from .runner import JobRunner
from .sessions import SessionStore
from .settings import WebSettings
from .workspace import Workspace


@dataclass
class WebState:
    settings: WebSettings
    workspace: Workspace
    staging: LocalRepository  # where backups are taken (safety/ below it)
    repo: Repository  # where they are stored and listed from (the staging dir or --repo)
    publish: PublishRequest | None  # how a new backup gets from staging into repo
    catalog: BackupCatalog
    transport: DirectTransport
    sessions: SessionStore
    limiter: LoginLimiter
    passwords: PasswordChecks
    runner: JobRunner
    reviews: ReviewStore

    @classmethod
    def create(cls, settings: WebSettings) -> WebState:
        workspace = Workspace(settings.tmp_root)
        staging = staging_repository(settings, workspace)
        repo = open_backup_repository(settings, staging)
        # The same direct transport as `mmops restore`: safety backups in <backups>/safety.
        transport = DirectTransport(settings.database_url, safety_repository(staging).path)
        return cls(
            settings=settings, workspace=workspace, staging=staging, repo=repo,
            publish=publish_request(settings, staging), catalog=BackupCatalog(repo, staging),
            transport=transport,
            sessions=SessionStore(settings.secret_key, settings.idle_timeout_s),
            limiter=LoginLimiter(settings.login_failures_allowed, settings.login_window_s),
            passwords=PasswordChecks(),
            runner=JobRunner(), reviews=ReviewStore(settings.review_ttl_s, workspace.remove_dir),
        )

    def close(self) -> None:
        self.reviews.clear()
        self.workspace.close()
