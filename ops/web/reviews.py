"""Restores waiting for their typed confirmation: the prepared plan, its file, who asked.

A review lives until it is cancelled, replaced by a newer one of the same session, or left
alone for ``ttl_s``; its private directory (the uploaded file, a backup downloaded from the
repository, a decrypted copy) is removed with it, or as soon as its restore ends. A restored
review stays (without its files) so that its page keeps saying what happened.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..jobs.restore import PreparedRestore

PER_SESSION = 2


@dataclass
class Review:
    id: str
    owner: str
    prepared: PreparedRestore
    display_name: str  # the file as the operator knows it
    scratch: Path | None  # its private directory, removed afterwards (None: nothing to remove)
    created: float = field(default_factory=time.monotonic)
    busy: bool = False  # a restore of it is running
    refused: bool = False  # its plan refuses: shown, never restored
    outcome: Outcome | None = None  # its restore ran: what the page says from now on


@dataclass(frozen=True)
class Outcome:
    message: str
    ok: bool


class ReviewStore:
    def __init__(self, ttl_s: float, remove_dir: Callable[[Path], None]) -> None:
        self.ttl = ttl_s
        self.remove_dir = remove_dir
        self._lock = threading.Lock()
        self._reviews: dict[str, Review] = {}

    def add(self, owner: str, prepared: PreparedRestore, display_name: str,
            scratch: Path | None, *, refused: bool = False) -> Review:
        review = Review(secrets.token_urlsafe(16), owner, prepared, display_name, scratch,
                        refused=refused)
        with self._lock:
            self._expire()
            mine = sorted((r for r in self._reviews.values()
                           if r.owner == owner and not r.busy), key=lambda r: r.created)
            for old in mine[: max(0, len(mine) - PER_SESSION + 1)]:
                self._drop(old)
            self._reviews[review.id] = review
        return review

    def get(self, review_id: str, owner: str) -> Review | None:
        with self._lock:
            self._expire()
            review = self._reviews.get(review_id)
            return review if review is not None and review.owner == owner else None

    def finish(self, review: Review, message: str, *, ok: bool) -> None:
        """The restore of ``review`` ended: its files go, what happened stays for its page."""
        with self._lock:
            if review.scratch is not None:
                self.remove_dir(review.scratch)
                review.scratch = None
            review.outcome = Outcome(message, ok)
            review.created = time.monotonic()  # kept ``ttl_s`` from now
            review.busy = False

    def remove(self, review: Review) -> None:
        with self._lock:
            self._drop(review)

    def clear(self) -> None:
        with self._lock:
            for review in list(self._reviews.values()):
                self._drop(review)

    def _drop(self, review: Review) -> None:
        self._reviews.pop(review.id, None)
        if review.scratch is not None:
            self.remove_dir(review.scratch)

    def _expire(self) -> None:
        now = time.monotonic()
        for review in list(self._reviews.values()):
            if not review.busy and now - review.created > self.ttl:
                self._drop(review)
