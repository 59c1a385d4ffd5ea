"""Sign-in attempts per client address in a sliding window, plus a global ceiling so that many
addresses together cannot try passwords quickly either.

An attempt is *reserved* (counted) before its password is checked, under one lock: a burst of
concurrent tries from one address gets no more checks than the allowance, however many arrive
at once. A reservation that was never checked (the server was busy) is given back; a right
password clears the address's record.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

GLOBAL_FACTOR = 10  # all addresses together: this many times one address's allowance
MAX_ADDRESSES = 10_000  # addresses remembered before the quiet ones are forgotten


@dataclass(frozen=True)
class Attempt:
    """One reserved sign-in attempt (what ``release`` and ``succeeded`` give back)."""

    client: str
    at: float


class LoginLimiter:
    def __init__(self, allowed: int, window_s: float) -> None:
        self.allowed = allowed
        self.window = window_s
        self._lock = threading.Lock()
        self._by_client: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window:
            q.popleft()

    def reserve(self, client: str) -> tuple[Attempt | None, float]:
        """Count one attempt by ``client`` now: (the attempt, 0), or (None, seconds until it
        may try again) when its allowance or the global one is used up."""
        now = time.monotonic()
        with self._lock:
            self._trim(self._all, now)
            q = self._by_client.get(client, deque())  # refused addresses are not stored
            self._trim(q, now)
            waits = [0.0]
            if len(q) >= self.allowed:
                waits.append(self.window - (now - q[0]))
            if len(self._all) >= self.allowed * GLOBAL_FACTOR:
                waits.append(self.window - (now - self._all[0]))
            wait = max(waits)
            if wait > 0:
                return None, wait
            if len(self._by_client) >= MAX_ADDRESSES:  # forget addresses now quiet
                for key, old in list(self._by_client.items()):
                    self._trim(old, now)
                    if not old:
                        del self._by_client[key]
            q.append(now)
            self._by_client[client] = q
            self._all.append(now)
            return Attempt(client, now), 0.0

    def release(self, attempt: Attempt) -> None:
        """Give back an attempt whose password was never checked."""
        with self._lock:
            self._discard(self._all, attempt.at)
            self._discard(self._by_client.get(attempt.client, deque()), attempt.at)

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: the address starts afresh."""
        with self._lock:
            self._discard(self._all, attempt.at)
            self._by_client.pop(attempt.client, None)

    @staticmethod
    def _discard(q: deque[float], at: float) -> None:
        try:
            q.remove(at)
        except ValueError:
            pass  # already out of the window


def minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))
