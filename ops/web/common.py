"""What every route shares: the session, the CSRF check, rendering, answers in HTML or JSON."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .headers import PEER
from .sessions import COOKIE, Session
from .state import WebState

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
CSRF_REFUSED = (
    "This form was not sent by this page (its security token is missing or out of date); "
    "nothing was changed. Reload the page and try again."
)

Handler = Callable[[Request, Session], Awaitable[Response]]


def web(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def url(request: Request, route: str, /, **params: Any) -> str:
    """A path (with the root path) for a route: links keep working behind a proxy."""
    return str(request.app.url_path_for(route, **params))


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    st = web(request)
    response.set_cookie(
        COOKIE, st.sessions.cookie_value(session), httponly=True, samesite="strict",
        secure=st.settings.secure_cookies, path=st.settings.root_path or "/",
    )


def peer(request: Request) -> str:
    """The address that connected (the proxy's, behind ``--trusted-proxy``)."""
    if PEER in request.scope:
        return str(request.scope[PEER])
    return request.client.host if request.client else ""


def client_address(request: Request) -> str:
    """The client's address: behind a ``--trusted-proxy``, the one it forwarded."""
    return request.client.host if request.client else "unknown"


def current_session(request: Request) -> tuple[Session | None, bool]:
    """The request's signed-in session, and whether it is new (the cookie must be set).

    Behind an authenticating proxy (``--trust-header``, only from ``--trusted-proxy``
    addresses) the proxy's user header signs the browser in.
    """
    st = web(request)
    session = st.sessions.get(request.cookies.get(COOKIE))
    if session is not None and session.signed_in:
        return session, False
    header = st.settings.trust_header
    if header and peer(request) in st.settings.trusted_proxies and request.headers.get(header):
        if session is not None:
            st.sessions.end(session)
        return st.sessions.new(signed_in=True, user=request.headers[header][:100]), True
    return None, False


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200, session: Session | None = None) -> HTMLResponse:
    st = web(request)
    ctx = {
        "request": request,
        "url": functools.partial(url, request),
        "session": session,
        "csrf": session.csrf if session is not None else "",
        "database": st.settings.database_url.database,
        "host": st.transport.label,
        **(context or {}),
    }
    html = templates.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status_code)


def error_response(request: Request, message: str, status_code: int,
                   session: Session | None = None) -> Response:
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status_code)
    return render(request, "error.html", {"message": message}, status_code=status_code,
                  session=session)


def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The route needs a signed-in session; signed out, it redirects to the sign-in page."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        session, new = current_session(request)
        if session is None:
            if wants_json(request):
                return JSONResponse({"error": "Signed out; sign in again."}, status_code=401)
            return RedirectResponse(url(request, "signin"), status_code=303)
        response = await handler(request, session)
        if new:
            set_session_cookie(request, response, session)
        return response

    return wrapper


async def checked_form(request: Request, session: Session) -> dict[str, str] | None:
    """The posted form when its CSRF token is the session's (field or X-CSRF-Token header);
    None when it is not."""
    form = await request.form(max_files=0, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    token = fields.get("csrf_token") or request.headers.get("x-csrf-token")
    return fields if session.csrf_ok(token) else None
