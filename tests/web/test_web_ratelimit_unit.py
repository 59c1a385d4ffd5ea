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


def test_password_checks_beyond_the_free_slots_wait_then_give_up(password_hash: str) -> None:
    import anyio

    from ops.web.passwords import PasswordChecks

    async def burst() -> list[bool | None]:
        # One slot; an argon2id check (64 MiB, 3 passes) holds it far longer than 10 ms.
        checks = PasswordChecks(slots=1, wait_s=0.01)
        results: list[bool | None] = []

        async def one() -> None:
            results.append(await checks.verify(password_hash, "wrong"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        return results

    # In its own thread: the browser tests' sync Playwright keeps an event loop in this one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(anyio.run, burst).result()
    assert sorted(results, key=str) == [False, None, None]
