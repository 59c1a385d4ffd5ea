"""Signing in and out: one admin password (argon2id hash), rate-limited, CSRF-protected."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .common import (
    CSRF_REFUSED,
    checked_form,
    client_address,
    current_session,
    error_response,
    render,
    set_session_cookie,
    signed_in,
    url,
    web,
)
from .ratelimit import minutes
from .sessions import COOKIE, Session

BUSY = "The server is busy checking other sign-ins; try again in a few seconds."


def _anonymous(request: Request) -> tuple[Session, bool]:
    st = web(request)
    session = st.sessions.get(request.cookies.get(COOKIE))
    if session is not None:
        return session, False
    return st.sessions.new(), True


async def signin_page(request: Request) -> Response:
    session, _new = current_session(request)
    if session is not None:
        response: Response = RedirectResponse(url(request, "index"), status_code=303)
        if _new:
            set_session_cookie(request, response, session)
        return response
    anonymous, new = _anonymous(request)
    response = render(request, "signin.html", {"csrf": anonymous.csrf}, session=None)
    if new:
        set_session_cookie(request, response, anonymous)
    return response


async def signin(request: Request) -> Response:
    st = web(request)
    anonymous, new = _anonymous(request)
    form = await checked_form(request, anonymous)
    if form is None:
        response = error_response(request, CSRF_REFUSED, 403)
        if new:
            set_session_cookie(request, response, anonymous)
        return response
    attempt, wait = st.limiter.reserve(client_address(request))
    if attempt is None:
        response = _signin_error(
            request, anonymous, 429,
            f"Too many failed sign-ins; try again in {minutes(wait)} minutes.")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    encoded = st.settings.password_hash
    password = form.get("password", "")
    ok = await st.passwords.verify(encoded, password) if encoded else False
    if ok is None:
        st.limiter.release(attempt)  # never checked: it does not count
        response = _signin_error(request, anonymous, 429, BUSY)
        response.headers["Retry-After"] = "5"
        return response
    if not ok:
        return _signin_error(request, anonymous, 401, "Wrong password; you are not signed in.")
    st.limiter.succeeded(attempt)
    st.sessions.end(anonymous)  # a fresh id on sign-in (no session fixation)
    session = st.sessions.new(signed_in=True)
    response = RedirectResponse(url(request, "index"), status_code=303)
    set_session_cookie(request, response, session)
    return response


def _signin_error(request: Request, session: Session, status: int, message: str) -> Response:
    response = render(request, "signin.html", {"csrf": session.csrf, "error": message},
                      status_code=status)
    set_session_cookie(request, response, session)
    return response


@signed_in
async def signout(request: Request, session: Session) -> Response:
    if await checked_form(request, session) is None:
        return error_response(request, CSRF_REFUSED, 403, session)
    web(request).sessions.end(session)
    response = RedirectResponse(url(request, "signin"), status_code=303)
    response.delete_cookie(COOKIE, path=web(request).settings.root_path or "/")
    return response
