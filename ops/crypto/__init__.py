"""Encryption of whole backup files with age (see :mod:`ops.crypto.age`)."""

from __future__ import annotations

from .age import (
    AGE_SUFFIX,
    EncryptingSink,
    decrypt_stream,
    decrypt_to_file,
    generate_identity,
    load_identities,
    parse_recipient,
    parse_recipients,
)

__all__ = [
    "AGE_SUFFIX",
    "EncryptingSink",
    "decrypt_stream",
    "decrypt_to_file",
    "generate_identity",
    "load_identities",
    "parse_recipient",
    "parse_recipients",
]
