"""The admin password: only its argon2id hash is ever stored (``MMOPS_WEB_PASSWORD_HASH``)."""

from __future__ import annotations

import anyio
import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ConfigError

_hasher = PasswordHasher(type=Type.ID)
# Each argon2id check holds its memory cost (64 MiB by default) while it runs: at most this
# many run at once, so a burst of sign-ins cannot grow the server by 64 MiB per request.
CONCURRENT_CHECKS = 2
CHECK_WAIT_S = 10.0  # a sign-in waits this long for a free check, then gets 429


def hash_password(password: str) -> str:
    """An argon2id hash (salted, with its parameters) of ``password``."""
    if not password:
        raise ConfigError("The password is empty; type one on standard input.")
    return _hasher.hash(password)


def check_hash(encoded: str) -> str:
    """``encoded`` if it is an argon2id hash; ConfigError (never repeating it) otherwise."""
    if not encoded.startswith("$argon2id$"):
        raise ConfigError(
            "MMOPS_WEB_PASSWORD_HASH is not an argon2id hash.",
            hint="Make one with: mmops web hash-password (it reads the password on stdin).",
        )
    return encoded


def verify_password(encoded: str, password: str) -> bool:
    """True when ``password`` matches; constant-time inside argon2."""
    try:
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class PasswordChecks:
    """Password checks in worker threads, ``slots`` at a time (bounded memory)."""

    def __init__(self, slots: int = CONCURRENT_CHECKS, wait_s: float = CHECK_WAIT_S) -> None:
        self.slots = slots
        self.wait_s = wait_s
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop

    async def verify(self, encoded: str, password: str) -> bool | None:
        """Whether ``password`` matches; None when no check was free within ``wait_s``."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.slots)
        limiter = self._limiter
        acquired = False
        with anyio.move_on_after(self.wait_s):
            await limiter.acquire()
            acquired = True
        if not acquired:
            return None
        try:
            return await anyio.to_thread.run_sync(verify_password, encoded, password)
        finally:
            limiter.release()
