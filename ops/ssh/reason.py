"""Why a network operation failed, in words: ``Connection refused``, never Python's
``[Errno 111] Connection refused`` nor paramiko's ``[Errno None] Unable to connect to port 22
on 127.0.0.1``."""

from __future__ import annotations

import re
import socket

import paramiko

_ERRNO = re.compile(r"^\[Errno [^\]]*\]\s*")


def reason(exc: BaseException) -> str:
    """The operator-facing reason of ``exc`` (an OSError, a paramiko or invoke error)."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # one error per address tried (IPv4, IPv6): the distinct reasons
        reasons = sorted({reason(e) for e in exc.errors.values()})
        return " / ".join(reasons) or "no address could be reached"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _ERRNO.sub("", str(exc)).strip().rstrip(".") or type(exc).__name__
