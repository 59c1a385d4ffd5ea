"""Sign-in limits of the real `mmops web` under attack: a burst of concurrent wrong passwords
gets no more checks than the allowance, argon2's memory stays bounded however many arrive at
once, and behind `--trusted-proxy` each forwarded client has its own allowance."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ops.dburl import DbUrl
from tests.web.conftest import PASSWORD, WebServer, csrf_of, start_web, stop_web

pytestmark = pytest.mark.postgres

BURST = 120
MiB = 1 << 20


@pytest.fixture
def proxied(app_db: DbUrl, password_hash: str, tmp_path: Path) -> Iterator[WebServer]:
    server = start_web(app_db, password_hash, tmp_path, "--trusted-proxy", "127.0.0.1")
    try:
        yield server
    finally:
        stop_web(server)


def anonymous_session(base_url: str) -> tuple[str, str]:
    """(cookie, CSRF token) of a fresh sign-in page: every post of a burst can share them."""
    r = httpx.get(base_url + "/signin")
    return r.cookies["mmops_session"], csrf_of(r.text)


def sign_in_as(base_url: str, password: str, session: tuple[str, str], *,
               source: str = "127.0.0.1", headers: dict[str, str] | None = None,
               start: threading.Barrier | None = None) -> int:
    cookie, csrf = session
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=120) as client:
        if start is not None:
            start.wait()
        r = client.post(base_url + "/signin", data={"password": password, "csrf_token": csrf},
                        headers={"Cookie": f"mmops_session={cookie}", **(headers or {})})
    assert "Traceback" not in r.text
    return r.status_code


def burst(base_url: str, sources: list[str]) -> Counter[int]:
    """One wrong sign-in from each of ``sources``, all sent at the same moment."""
    session = anonymous_session(base_url)
    start = threading.Barrier(len(sources))
    with ThreadPoolExecutor(len(sources)) as pool:
        statuses = list(pool.map(lambda s: sign_in_as(base_url, "wrong", session, source=s,
                                                      start=start), sources))
    return Counter(statuses)


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", text, re.M).group(1)) * 1024


def test_a_burst_of_concurrent_wrong_passwords_from_one_address_gets_five_checks(
        web_server: WebServer) -> None:
    statuses = burst(web_server.base_url, ["127.0.0.1"] * BURST)
    assert statuses[401] <= 5, statuses
    assert statuses[401] + statuses[429] == BURST, statuses
    # ... and the address stays locked: the right password is not even checked now.
    session = anonymous_session(web_server.base_url)
    assert sign_in_as(web_server.base_url, PASSWORD, session) == 429


def test_concurrent_wrong_passwords_from_many_addresses_keep_memory_flat(
        web_server: WebServer) -> None:
    # Warm up: one check, so the page and argon2 are loaded before the baseline is read.
    session = anonymous_session(web_server.base_url)
    assert sign_in_as(web_server.base_url, "wrong", session, source="127.0.9.9") == 401
    before = peak_rss(web_server.proc.pid)
    statuses = burst(web_server.base_url, [f"127.0.{i // 250 + 1}.{i % 250 + 1}"
                                           for i in range(BURST)])
    after = peak_rss(web_server.proc.pid)
    print(f"peak RSS before the burst {before / MiB:.0f} MiB, after {after / MiB:.0f} MiB")
    assert set(statuses) <= {401, 429}, statuses
    assert statuses[401] >= 1
    # argon2id holds 64 MiB per check: a bound of 2 at once keeps the growth near 128 MiB
    # (unbounded, ~40 ran at once: +2.3 GB).
    assert after - before < 300 * MiB, (before, after, statuses)


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance(
        proxied: WebServer) -> None:
    base = proxied.base_url
    session = anonymous_session(base)
    attacker = {"X-Forwarded-For": "203.0.113.5"}
    for _ in range(5):
        assert sign_in_as(base, "wrong", session, headers=attacker) == 401
    assert sign_in_as(base, "wrong", session, headers=attacker) == 429
    # The admin, behind the same proxy, signs in: the attacker's tries are not theirs.
    admin = {"X-Forwarded-For": "198.51.100.7"}
    assert sign_in_as(base, PASSWORD, anonymous_session(base), headers=admin) == 303
    # A client cannot name itself past the proxy: the proxy appends the address it saw,
    # and that rightmost untrusted one is the one counted.
    spoofed = {"X-Forwarded-For": "198.51.100.99, 203.0.113.5"}
    assert sign_in_as(base, "wrong", session, headers=spoofed) == 429


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(web_server: WebServer) -> None:
    base = web_server.base_url
    session = anonymous_session(base)
    for i in range(5):
        forged = {"X-Forwarded-For": f"203.0.113.{i}"}
        assert sign_in_as(base, "wrong", session, headers=forged) == 401
    forged = {"X-Forwarded-For": "198.51.100.7"}
    assert sign_in_as(base, PASSWORD, session, headers=forged) == 429
