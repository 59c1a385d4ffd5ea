"""Failed sign-ins per client address in a sliding window, plus a global ceiling so that many
addresses together cannot try passwords quickly either."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

GLOBAL_FACTOR = 10  # all addresses together: this many times one address's allowance


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

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            self._trim(self._all, now)
            q = self._by_client.get(client, deque())
            self._trim(q, now)
            waits = [0.0]
            if len(q) >= self.allowed:
                waits.append(self.window - (now - q[0]))
            if len(self._all) >= self.allowed * GLOBAL_FACTOR:
                waits.append(self.window - (now - self._all[0]))
            return max(waits)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._by_client.setdefault(client, deque()).append(now)
            self._all.append(now)
            if len(self._by_client) > 10_000:  # forget quiet addresses
                for key in [k for k, q in self._by_client.items() if not q]:
                    del self._by_client[key]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._by_client.pop(client, None)


def minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))
