"""The sign-in limiter alone (the HTTP behaviour is in test_web_signin_limits.py)."""

from __future__ import annotations

from ops.web.ratelimit import GLOBAL_FACTOR, LoginLimiter


def test_an_attempt_is_counted_when_reserved_and_given_back_only_if_never_checked() -> None:
    limiter = LoginLimiter(allowed=5, window_s=600)
    attempts = [limiter.reserve("a")[0] for _ in range(5)]
    assert all(attempts)
    refused, wait = limiter.reserve("a")
    assert refused is None and 0 < wait <= 600
    limiter.release(attempts[0])  # e.g. no password check was free: it does not count
    again, _ = limiter.reserve("a")
    assert again is not None
    limiter.succeeded(again)  # the right password: the address starts afresh
    assert all(limiter.reserve("a")[0] for _ in range(5))


def test_refused_addresses_are_not_remembered() -> None:
    limiter = LoginLimiter(allowed=5, window_s=600)
    for i in range(5 * GLOBAL_FACTOR):
        assert limiter.reserve(f"10.0.{i // 250}.{i % 250}")[0] is not None
    for i in range(10_000):  # the global ceiling is reached: each is refused, none stored
        assert limiter.reserve(f"2001:db8::{i:x}")[0] is None
    assert len(limiter._by_client) == 5 * GLOBAL_FACTOR
