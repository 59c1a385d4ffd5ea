"""The one local command runner, and the process helpers that go with it.

Argument lists only (never a shell), an explicit environment, output captured, failures turned
into one ConfigError sentence naming the program (Barman's ``command_wrappers.Command`` is the
model). Callers never put a secret in ``argv``: pass it on stdin or in a 0600 file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> CommandResult:
    """Run one external command: an argument list (never a shell), explicit env, output captured.

    On failure (``check``) raises ConfigError naming the program and the last line of stderr.
    Callers must not put secrets in ``argv``; pass them on stdin or in files instead.
    """
    run_env = dict(env) if env is not None else {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
    }
    try:
        res = subprocess.run(
            list(argv),
            env=run_env,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"Program {argv[0]!r} is not installed.") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s.") from exc
    result = CommandResult(tuple(argv), res.returncode, res.stdout, res.stderr)
    if check and res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"{Path(argv[0]).name} failed (exit {res.returncode}): {tail}")
    return result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def terminate_pid(pid: int, *, must_contain: str, timeout: float = 10) -> None:
    """SIGTERM ``pid`` (then SIGKILL) — only if its command line contains ``must_contain``.

    The check guards against a recycled pid: we only ever end the process we started.
    """
    if not pid_alive(pid) or must_contain not in " ".join(cmdline(pid)):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
