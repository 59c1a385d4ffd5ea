"""The one place that turns an argument list into a remote command string (``shlex.quote``).

Remote commands are always argument lists; nothing user-supplied is ever pasted into a shell
string unquoted. Secrets never go into a command: the agent reads them from the env file itself.
Fabric's ``env=`` is deliberately not offered here: Fabric 3 inlines it into the command line.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RemoteError
from .reason import reason

if TYPE_CHECKING:
    from fabric import Connection


def quote_command(argv: Sequence[str]) -> str:
    """``['python3', '-c', code]`` → a string the remote login shell runs as exactly that argv."""
    if not argv:
        raise ValueError("empty remote command")
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def stderr_tail(self, lines: int = 5) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run(
    conn: Connection,
    argv: Sequence[str],
    *,
    check: bool = True,
    what: str | None = None,
    timeout: float | None = None,
) -> CommandResult:
    """Run ``argv`` on the server, capture output; raise RemoteError on failure when ``check``."""
    command = quote_command(argv)
    try:
        res = conn.run(command, hide=True, warn=True, in_stream=False, timeout=timeout)
    except Exception as exc:  # invoke/paramiko failures: connection lost, timeout
        raise RemoteError(
            f"Running {what or argv[0]} on the server failed: {reason(exc)}."
        ) from exc
    result = CommandResult(tuple(argv), res.exited, res.stdout, res.stderr)
    if check and not result.ok:
        tail = result.stderr_tail() or result.stdout.strip()[-500:]
        raise RemoteError(
            f"{what or argv[0]} failed on the server (exit {result.exit_code}): {tail}"
        )
    return result
