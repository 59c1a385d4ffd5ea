"""Server-side sessions behind a signed cookie, with the CSRF token each one carries.

The cookie holds only a random session id signed with a per-process key (itsdangerous); what
the session means (signed in or not, its CSRF token, when it was last used) stays in memory
here, so signing out or an idle timeout really ends it. Sessions end when the server stops.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, Signer

COOKIE = "mmops_session"
MAX_ANONYMOUS = 10_000  # unauthenticated sessions (the sign-in page's CSRF) kept at most
ANONYMOUS_TTL_S = 30 * 60


@dataclass
class Session:
    id: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    signed_in: bool = False
    user: str = "admin"
    last_seen: float = field(default_factory=time.monotonic)

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class SessionStore:
    def __init__(self, secret_key: bytes, idle_timeout_s: float) -> None:
        self._signer = Signer(secret_key, salt="mmops-web-session")
        self._idle = idle_timeout_s
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def cookie_value(self, session: Session) -> str:
        return self._signer.sign(session.id).decode()

    def get(self, cookie: str | None, *, touch: bool = True) -> Session | None:
        """The live session a cookie names, or None (bad signature, unknown, idle too long)."""
        if not cookie:
            return None
        try:
            sid = self._signer.unsign(cookie).decode()
        except BadSignature:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            ttl = self._idle if session.signed_in else ANONYMOUS_TTL_S
            if now - session.last_seen > ttl:
                del self._sessions[sid]
                return None
            if touch:
                session.last_seen = now
            return session

    def new(self, *, signed_in: bool = False, user: str = "admin") -> Session:
        session = Session(secrets.token_urlsafe(32), signed_in=signed_in, user=user)
        with self._lock:
            self._evict()
            self._sessions[session.id] = session
        return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def _evict(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if now - s.last_seen > (self._idle if s.signed_in else ANONYMOUS_TTL_S):
                del self._sessions[sid]
        anonymous = [s for s in self._sessions.values() if not s.signed_in]
        if len(anonymous) >= MAX_ANONYMOUS:
            anonymous.sort(key=lambda s: s.last_seen)
            for s in anonymous[: len(anonymous) - MAX_ANONYMOUS + 1]:
                del self._sessions[s.id]
