"""The admin password: only its argon2id hash is ever stored (``MMOPS_WEB_PASSWORD_HASH``)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ConfigError

_hasher = PasswordHasher(type=Type.ID)


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
