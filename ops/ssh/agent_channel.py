"""Talk to ``OPS_DIR/venv/bin/python -m ops.agent ...`` over one SSH channel.

The agent speaks JSON lines: messages on stdout, progress on stderr (see ``ops.agent``). This
module relays progress to a callback while waiting for messages, sends commands on stdin, and
turns the agent's ``error`` message into the same exception class (and exit code) locally.
Closing the session closes the channel: the agent sees end of stdin, cancels and cleans up.
"""

from __future__ import annotations

import contextlib
import json
import select
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any

import paramiko

from .. import errors
from ..engine.results import Progress
from ..errors import OpsError, RemoteError
from .commands import quote_command
from .reason import reason

ProgressSink = Callable[[Progress], None]

NOT_INSTALLED_HINT = "Run `make setup-remote-ops` (mmops remote setup) first."


def agent_argv(ops_dir: str, command: str, *args: str) -> list[str]:
    python = str(PurePosixPath(ops_dir) / "venv" / "bin" / "python")
    return [python, "-m", "ops.agent", command, "--ops-dir", ops_dir, *args]


def error_from_message(msg: dict[str, Any]) -> OpsError:
    """The agent's ``error`` message as our exception class (unknown kinds: RemoteError)."""
    cls = getattr(errors, str(msg.get("kind")), None)
    if not (isinstance(cls, type) and issubclass(cls, OpsError)):
        cls = RemoteError
    return cls(str(msg.get("message") or "The server-side agent failed."), hint=msg.get("hint"))


class AgentSession:
    """One running agent command. Use as a context manager; closing cancels an unfinished job."""

    def __init__(
        self,
        conn: Any,
        argv: Sequence[str],
        *,
        on_progress: ProgressSink | None = None,
    ) -> None:
        self.conn = conn
        self.argv = list(argv)
        self.on_progress = on_progress or (lambda _p: None)
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._out = b""
        self._err = b""
        self._messages: deque[dict[str, Any]] = deque()
        self.chan: Any = None

    def __enter__(self) -> AgentSession:
        self.conn.open()
        transport = self.conn.transport
        try:
            self.chan = transport.open_session()
            self.chan.exec_command(quote_command(self.argv))
        except Exception as exc:
            raise RemoteError(
                f"Could not start the agent on the server: {reason(exc)}."
            ) from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel. On a connection that just died paramiko can raise EOFError or
        OSError from the close itself; that must not replace the error that is being reported
        (it surfaced as click's bare "Aborted!" when an SSH drop raced the pull's own report)."""
        chan, self.chan = self.chan, None
        if chan is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                chan.close()

    def send(self, **msg: Any) -> None:
        assert self.chan is not None
        self.chan.sendall((json.dumps(msg) + "\n").encode())

    def end_input(self) -> None:
        assert self.chan is not None
        self.chan.shutdown_write()

    # -- reading ---------------------------------------------------------------------------------

    def _pump(self, wait: float) -> bool:
        """Read what is available; False when the channel has nothing more to give."""
        chan = self.chan
        assert chan is not None
        got = False
        while chan.recv_ready():
            self._out += chan.recv(65536)
            got = True
        while chan.recv_stderr_ready():
            self._err += chan.recv_stderr(65536)
            got = True
        self._split()
        if got:
            return True
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            return False
        select.select([chan], [], [], wait)
        return True

    def _split(self) -> None:
        while b"\n" in self._out:
            line, self._out = self._out.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            if not text:
                continue
            try:
                msg = json.loads(text)
            except ValueError:
                self.stderr_tail.append(text)
                continue
            if isinstance(msg, dict):
                self._messages.append(msg)
        while b"\n" in self._err:
            line, self._err = self._err.split(b"\n", 1)
            text = line.decode(errors="replace").rstrip()
            try:
                msg = json.loads(text)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and msg.get("event") == "progress":
                self.on_progress(
                    Progress(
                        phase=str(msg.get("phase")),
                        done=int(msg.get("done") or 0),
                        total=msg.get("total"),
                        item=msg.get("item"),
                        message=msg.get("message"),
                    )
                )
            elif isinstance(msg, dict) and msg.get("event") == "log":
                self.stderr_tail.extend(str(msg.get("message", "")).splitlines()[-5:])
            elif text:
                self.stderr_tail.append(text)

    def next_message(self, timeout: float | None = None) -> dict[str, Any]:
        """The next stdout message; raises the agent's error, or RemoteError if it vanished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if deadline is not None and time.monotonic() > deadline:
                raise RemoteError("The server-side agent did not answer in time.")
            if not self._pump(0.2):
                break
        if not self._messages:
            raise self._vanished()
        msg = self._messages.popleft()
        if msg.get("event") == "error":
            raise error_from_message(msg)
        return msg

    def expect(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        msg = self.next_message(timeout)
        if msg.get("event") != event:
            raise RemoteError(f"The agent answered {msg.get('event')!r} where {event!r} was due.")
        return msg

    def _vanished(self) -> RemoteError:
        status = self.chan.recv_exit_status() if self.chan is not None else -1
        tail = "\n".join(self.stderr_tail)
        if status == 127 or "No such file or directory" in tail:
            return RemoteError(
                "The agent is not installed on the server (its venv python is missing).",
                hint=NOT_INSTALLED_HINT,
            )
        if "No module named" in tail:
            return RemoteError(
                "The server's agent venv lacks the ops package.", hint=NOT_INSTALLED_HINT
            )
        last = (self.stderr_tail[-1] if self.stderr_tail else "no output")[:300]
        return RemoteError(f"The server-side agent ended (exit {status}) without a result: {last}")


def run_agent(
    conn: Any,
    ops_dir: str,
    command: str,
    *args: str,
    on_progress: ProgressSink | None = None,
) -> dict[str, Any]:
    """Run a one-shot agent command (no stdin conversation) and return its result message."""
    with AgentSession(conn, agent_argv(ops_dir, command, *args), on_progress=on_progress) as s:
        s.end_input()
        return s.expect("result")
