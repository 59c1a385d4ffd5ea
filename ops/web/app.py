"""The ASGI app of ``mmops web``: routes, static files, security headers, error pages."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ..errors import ConfigError, OpsError
from . import routes_auth, routes_backup, routes_restore
from .common import HERE, current_session, error_response, url
from .errors import UNEXPECTED, http_status
from .headers import KeepPeer, SecurityHeaders
from .settings import WebSettings
from .state import WebState

log = logging.getLogger("ops.web")


class ObjectName(Convertor[str]):
    """A stored object's name as one path parameter: any character, percent-encoded in the
    links we make (a name may hold ``?``, ``#``, ``%`` or even ``/``; Starlette's own ``str``
    convertor refuses ``/`` and encodes nothing). The server decodes the path before routing,
    so the route sees the name as it is stored."""

    regex = ".+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


register_url_convertor("object_name", ObjectName())


def _routes() -> list[BaseRoute]:
    return [
        Route("/", routes_backup.index, name="index"),
        Route("/signin", routes_auth.signin_page, name="signin"),
        Route("/signin", routes_auth.signin, methods=["POST"], name="signin_post"),
        Route("/signout", routes_auth.signout, methods=["POST"], name="signout"),
        Route("/backups", routes_backup.create_backup, methods=["POST"], name="create_backup"),
        Route("/backups/{place}/{name:object_name}", routes_backup.download, name="download"),
        Route("/jobs/{job_id}", routes_backup.job_status, name="job"),
        Route("/restore/upload", routes_restore.upload, methods=["POST"], name="upload"),
        Route("/restore/stored", routes_restore.restore_stored, methods=["POST"],
              name="restore_stored"),
        Route("/restore/{review_id}", routes_restore.review_page, name="review"),
        Route("/restore/{review_id}", routes_restore.run_restore, methods=["POST"],
              name="run_restore"),
        Route("/restore/{review_id}/cancel", routes_restore.cancel, methods=["POST"],
              name="cancel"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


async def _ops_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpsError)
    session, _new = current_session(request)
    return error_response(request, str(exc), http_status(exc), session)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    session, _new = current_session(request)
    if session is None and request.method == "GET":
        return RedirectResponse(url(request, "signin"), status_code=303)
    message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
    return error_response(request, message, exc.status_code, session)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, UNEXPECTED, 500)


def create_app(settings: WebSettings) -> Starlette:
    """The page for ``settings.database_url``. Its private work dir is made now and removed
    when the app shuts down (the ASGI lifespan)."""
    if not settings.password_hash and not settings.trust_header:
        raise ConfigError(
            "No admin password is configured: set MMOPS_WEB_PASSWORD_HASH.",
            hint="Make the hash with: mmops web hash-password (reads the password on stdin).",
        )
    state = WebState.create(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # A restore reads its upload from the work dir until it commits or rolls back:
            # let it end before the work dir goes (systemd's TimeoutStopSec bounds the wait).
            await anyio.to_thread.run_sync(state.runner.wait_idle)
            state.close()

    routes = _routes()
    if settings.root_path:
        routes = [Mount(settings.root_path, routes=routes)]
    middleware = [Middleware(SecurityHeaders, hsts=settings.secure_cookies)]
    if settings.trusted_proxies:
        # Behind the proxy every request comes from its address: the client (what sign-ins
        # are limited by, what the log shows) is the one its X-Forwarded-For names.
        middleware[:0] = [Middleware(KeepPeer),
                          Middleware(ProxyHeadersMiddleware,
                                     trusted_hosts=sorted(settings.trusted_proxies))]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={OpsError: _ops_error, HTTPException: _http_error,
                            Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.web = state
    return app
