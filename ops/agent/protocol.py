"""The agent's side of its one SSH channel: JSON lines, the types shared with the laptop.

  * stdout — messages for the laptop: ``{"event": "ready"|"result"|"error", ...}``;
  * stderr — progress ``{"event": "progress", "phase", "done", "total", "item", "message"}``
    and ``{"event": "log", "message"}``;
  * stdin  — commands from the laptop: ``{"cmd": "uploaded"|"done"|"abort", ...}``.
    End of stdin (the laptop hung up, was interrupted or killed) cancels the job.

Secrets are kept out of every message when it is built (DESIGN invariant 3); nothing here
rewrites text, so a short or common password can never corrupt the protocol.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import Interrupted, RemoteError


class Emitter:
    """Writes JSON lines; a closed pipe (laptop gone) never raises here."""

    def __init__(self, out: Any = None, err: Any = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.broken = threading.Event()
        self._last_progress = 0.0
        self._last_phase: str | None = None
        self._lock = threading.Lock()

    def _write(self, stream: Any, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, default=str)
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.broken.set()

    def message(self, event: str, **fields: Any) -> None:
        self._write(self.out, {"event": event, **fields})

    def log(self, message: str) -> None:
        self._write(self.err, {"event": "log", "message": message})

    def progress(self, p: Any) -> None:
        """Engine Progress events, throttled to ~10/s except phase changes."""
        now = time.monotonic()
        if p.phase == self._last_phase and now - self._last_progress < 0.1:
            return
        self._last_phase, self._last_progress = p.phase, now
        self._write(self.err, {"event": "progress", **p.to_dict()})


class Inbox:
    """Reads command lines from stdin in a thread; EOF fires the cancel callback once."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdin
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.eof = threading.Event()
        self._on_eof: Callable[[], None] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="agent-stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.stream:
                line = line.strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = {"cmd": line}
                self.queue.put(msg if isinstance(msg, dict) else {"cmd": str(msg)})
        except (OSError, ValueError):
            pass
        with self._lock:
            self.eof.set()
            callback = self._on_eof
        self.queue.put(None)
        if callback is not None:
            callback()

    def on_eof(self, callback: Callable[[], None] | None) -> None:
        with self._lock:
            self._on_eof = callback
            fire = callback is not None and self.eof.is_set()
        if fire and callback is not None:
            callback()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The next command; raises Interrupted when the laptop hung up."""
        try:
            msg = self.queue.get(timeout=timeout)
        except queue.Empty as exc:
            raise RemoteError("The laptop did not answer in time; the job was abandoned.") from exc
        if msg is None:
            self.queue.put(None)
            raise Interrupted("The laptop disconnected; the job was cancelled and cleaned up.")
        if msg.get("cmd") == "abort":
            raise Interrupted("Cancelled by the operator; nothing was changed.")
        return msg
