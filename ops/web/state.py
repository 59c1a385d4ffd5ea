"""Everything one running page holds, created once by ``create_app`` (``app.state.web``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..repository.local import LocalRepository
from ..transport.direct import DirectTransport
from .backups import BackupCatalog, open_backup_repository, safety_repository
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
    repo: LocalRepository
    catalog: BackupCatalog
    transport: DirectTransport
    sessions: SessionStore
    limiter: LoginLimiter
    runner: JobRunner
    reviews: ReviewStore

    @classmethod
    def create(cls, settings: WebSettings) -> WebState:
        workspace = Workspace(settings.tmp_root)
        repo = open_backup_repository(settings, workspace)
        # The same direct transport as `mmops restore`: safety backups in <backups>/safety.
        transport = DirectTransport(settings.database_url, safety_repository(repo).path)
        return cls(
            settings=settings, workspace=workspace, repo=repo, catalog=BackupCatalog(repo),
            transport=transport,
            sessions=SessionStore(settings.secret_key, settings.idle_timeout_s),
            limiter=LoginLimiter(settings.login_failures_allowed, settings.login_window_s),
            runner=JobRunner(), reviews=ReviewStore(settings.review_ttl_s, workspace.discard),
        )

    def close(self) -> None:
        self.reviews.clear()
        self.workspace.close()
