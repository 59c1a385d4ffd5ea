"""Fixtures for the web page: an app database (the sandbox's migrations and sample data), the
app in-process (Starlette's TestClient) or as the real `mmops web` on 127.0.0.1 for Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from starlette.testclient import TestClient

from ops.dburl import DbUrl
from ops.sandbox.app.migrate import migrate
from ops.sandbox.app.seed import seed
from ops.web import WebSettings, create_app
from ops.web.passwords import hash_password
from tests.cli_helpers import MMOPS, url_text
from tests.conftest import require

T = TypeVar("T")
PASSWORD = "correct horse battery staple 7"  # a test-only admin password
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end in a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread, where asyncio.run is not allowed."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@pytest.fixture
def app_db(make_db: Callable[..., DbUrl]) -> DbUrl:
    """A fresh database holding the markdown-manager-like schema and a few rows."""
    url = make_db()
    run_async(lambda: migrate(url))
    run_async(lambda: seed(url, users=4, documents=12))
    return url


def query(url: DbUrl, sql: str) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return run_async(run)


def execute(url: DbUrl, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(run)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


@pytest.fixture
def web_settings(app_db: DbUrl, password_hash: str, tmp_path: Path) -> WebSettings:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return WebSettings(database_url=app_db, password_hash=password_hash, secure_cookies=False,
                       tmp_root=tmp)


@pytest.fixture
def client(web_settings: WebSettings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings), base_url="http://127.0.0.1") as c:
        yield c


def sign_in(client: TestClient, prefix: str = "") -> str:
    """Sign in; returns the session's CSRF token (from the page it lands on)."""
    page = client.get(f"{prefix}/signin")
    r = client.post(f"{prefix}/signin",
                    data={"password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 200 and "Create backup" in r.text
    return csrf_of(r.text)


@pytest.fixture
def signed_in(client: TestClient) -> str:
    return sign_in(client)


# ---- the real `mmops web` for the browser -------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebServer:
    def __init__(self, proc: subprocess.Popen[bytes], base_url: str, tmpdir: Path,
                 log: Path) -> None:
        self.proc, self.base_url, self.tmpdir, self.log = proc, base_url, tmpdir, log


def start_web(url: DbUrl, password_hash: str, tmp_path: Path, *args: str,
              cwd: Path | None = None, home: Path | None = None,
              wrapper: tuple[str, ...] = ()) -> WebServer:
    """The real `mmops web` on a free 127.0.0.1 port (``wrapper``: argv put in front)."""
    port = free_port()
    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir(mode=0o700, exist_ok=True)
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=url_text(url), MMOPS_WEB_PASSWORD_HASH=password_hash,
               TMPDIR=str(tmpdir), HOME=str(home or tmp_path))
    env.pop("BACKUP_DIR", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([*wrapper, str(MMOPS), "web", "--bind", f"127.0.0.1:{port}",
                                 *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd or tmp_path)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mmops web did not start:\n{log.read_text()}") from None
            time.sleep(0.1)
    return WebServer(proc, f"http://127.0.0.1:{port}", tmpdir, log)


def stop_web(server: WebServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture
def web_server(app_db: DbUrl, password_hash: str, tmp_path: Path) -> Iterator[WebServer]:
    server = start_web(app_db, password_hash, tmp_path)
    try:
        yield server
    finally:
        stop_web(server)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium with the flags that keep it off the (closed) network; never a
    downloaded browser. Missing, the test fails (scripts/bootstrap installs it)."""
    require(CHROMIUM.exists(), f"Chromium ({CHROMIUM})")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests keep a screenshot of each page: MMOPS_SCREENSHOTS, or a temp
    dir (its path is in the test log)."""
    wanted = os.environ.get("MMOPS_SCREENSHOTS")
    if not wanted:
        return tmp_path_factory.mktemp("screenshots")
    path = Path(wanted)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def base_url() -> None:
    """pytest-base-url's fixture (pulled in by pytest-playwright) is an instance method that
    newer pytest warns about; the tests pass absolute URLs, so none is needed."""
    return None


# ---- axe-core: the accessibility rules, injected into the page under test -----------------

AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
# What each violation is reported with: its rule, impact and the elements it found.
_AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ")),
  }));
}"""


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's source (npm package pinned in tests/web/package-lock.json; `make test`
    installs it with `npm ci --prefix tests/web`)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci --prefix tests/web` (make test does)")
    return AXE.read_text()


def axe_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now. Injected through the DevTools protocol
    (``evaluate``), not a <script> tag: the page's CSP rightly refuses inline scripts."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    violations: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
    return violations
