"""Hostile backups against the page: an upload with a hostile manifest is one 422 sentence (no
500, no traceback, nothing changed); a repository holding one still lists; three decompression
bombs uploaded at once leave the real `mmops web` server's memory flat."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from ops.dburl import DbUrl
from ops.web import WebSettings, create_app
from tests.archive.hostile import bomb, edit_manifest, engine_like_archive
from tests.archive.test_hostile_manifests import HOSTILE
from tests.web.conftest import PASSWORD, csrf_of, query, sign_in, start_web, stop_web

pytestmark = pytest.mark.postgres

MiB = 1 << 20
CASES = ["nested 200,000 deep", "tables is a string", "a row count is a string",
         "alembic revision is an object", "a table's member is not listed"]


def _upload(client: TestClient | httpx.Client, csrf: str, path: Path):
    with path.open("rb") as fh:
        return client.post("/restore/upload", data={"csrf_token": csrf},
                           files={"backup": (path.name, fh, "application/octet-stream")})


@pytest.mark.parametrize("case", CASES)
def test_an_upload_with_a_hostile_manifest_is_one_422_sentence(
        client: TestClient, signed_in: str, app_db: DbUrl, web_settings: WebSettings,
        tmp_path: Path, case: str) -> None:
    path = edit_manifest(engine_like_archive(tmp_path / "db-20261201T000000Z.mmops"),
                         HOSTILE[case])
    before = query(app_db, "SELECT count(*) FROM documents")
    r = _upload(client, signed_in, path)
    assert r.status_code == 422, r.text
    assert 'role="alert"' in r.text and "invalid manifest" in r.text
    assert "Traceback" not in r.text
    assert query(app_db, "SELECT count(*) FROM documents") == before
    assert list(web_settings.tmp_root.glob("mmops-web-*/uploads/*")) == []  # type: ignore[union-attr]


def test_a_repository_holding_hostile_backups_still_lists(
        app_db: DbUrl, password_hash: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    names = []
    for i, case in enumerate(CASES):
        name = f"{app_db.database}-2026120{i + 1}T000000Z.mmops"
        edit_manifest(engine_like_archive(repo / name), HOSTILE[case])
        names.append(name)
    settings = WebSettings(database_url=app_db, password_hash=password_hash,
                           secure_cookies=False, tmp_root=tmp_path, repo=str(repo))
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        sign_in(client)
        r = client.get("/")
    assert r.status_code == 200, r.text
    for name in names:
        assert name in r.text


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def test_three_bombs_uploaded_at_once_leave_the_servers_memory_flat(
        app_db: DbUrl, password_hash: str, tmp_path: Path) -> None:
    one = bomb(tmp_path / "bomb.mmops", frames=6, frame_raw=64 * MiB)
    files = []
    for i in range(3):
        files.append(tmp_path / f"{app_db.database}-2026120{i + 1}T000000Z.mmops")
        shutil.copy(one, files[-1])
    small = engine_like_archive(tmp_path / "small.mmops")
    server = start_web(app_db, password_hash, tmp_path)
    try:
        with httpx.Client(base_url=server.base_url, timeout=300, follow_redirects=True) as client:
            page = client.get("/signin")
            signed = client.post("/signin", data={"password": PASSWORD,
                                                  "csrf_token": csrf_of(page.text)})
            csrf = csrf_of(signed.text)
            assert _upload(client, csrf, small).status_code < 500
            baseline = _peak_rss_mib(server.proc.pid)

            def send(path: Path) -> int:
                with httpx.Client(base_url=server.base_url, timeout=300,
                                  cookies=client.cookies) as own:
                    return _upload(own, csrf, path).status_code

            with ThreadPoolExecutor(3) as pool:
                statuses = list(pool.map(send, files))
        peak = _peak_rss_mib(server.proc.pid)
    finally:
        stop_web(server)
    assert all(status < 500 for status in statuses), statuses
    assert "Traceback" not in server.log.read_text()
    # Before: each bomb's verify held several 64 MiB chunks at once (~+800 MiB for three).
    assert peak - baseline < 120, (baseline, peak)
