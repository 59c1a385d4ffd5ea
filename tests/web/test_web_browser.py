"""The page in a real Chromium (Debian's, driven by Playwright) against the real `mmops web`
on 127.0.0.1 and a real PostgreSQL. Each test keeps screenshots of the pages it saw."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ops.dburl import DbUrl
from tests.cli_helpers import MMOPS
from tests.web.conftest import PASSWORD, WebServer, execute, query

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

NAME_RE = r"t\d+_\d+-\d{8}T\d{6}Z\.mmops"
TABLES = ("users", "documents", "custom_dictionaries", "document_recovery")
LONG = 120_000  # ms: a backup or restore on a busy 2-core machine


def fingerprint(url: DbUrl) -> dict[str, str]:
    """Every row of the app's tables, hashed per table (equal fingerprints: equal data)."""
    return {t: query(url, f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' "
                          f"ORDER BY x::text)), '') FROM {t} x") for t in TABLES}


def shot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def sign_in(page: Page, server: WebServer, password: str = PASSWORD) -> None:
    page.goto(server.base_url + "/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def create_backup(page: Page, tmp_path: Path) -> Path:
    with page.expect_download(timeout=LONG) as info:
        page.get_by_role("button", name="Create backup").click()
    download = info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    return path


def review(page: Page, path: Path) -> None:
    page.get_by_label("Backup file").set_input_files(str(path))
    page.get_by_role("button", name="Review restore").click()


def test_sign_in_fails_with_a_wrong_password_and_succeeds_with_the_right_one(
        page: Page, web_server: WebServer, screenshots: Path) -> None:
    sign_in(page, web_server, "wrong password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong password")
    shot(page, screenshots, "01-signin-wrong-password")
    # The browser's cookies open nothing: no session was made.
    assert page.request.get(web_server.base_url + "/", max_redirects=0).status == 303
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Database Management", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Create backup")).to_be_visible()
    shot(page, screenshots, "02-page-signed-in")


def test_create_download_upload_review_typed_name_restore_brings_the_backup_back(
        page: Page, web_server: WebServer, app_db: DbUrl, tmp_path: Path,
        screenshots: Path) -> None:
    sign_in(page, web_server)
    before = fingerprint(app_db)
    path = create_backup(page, tmp_path)
    assert re.fullmatch(NAME_RE, path.name)
    expect(page.get_by_role("status")).to_contain_text("every checksum verified")
    shot(page, screenshots, "03-backup-created")
    verify = subprocess.run([str(MMOPS), "verify", str(path)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr

    execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents; "
                    "UPDATE users SET display_name = 'changed'")
    assert fingerprint(app_db) != before
    page.reload()
    expect(page.get_by_role("cell", name=path.name.split("-")[0]).first).to_be_visible()
    shot(page, screenshots, "04-backups-list")
    review(page, path)
    expect(page.get_by_role("heading", name="Review restore")).to_be_visible()
    expect(page.get_by_role("cell", name="public.documents")).to_be_visible()
    shot(page, screenshots, "05-review-plan")
    page.get_by_label("Type the database name to confirm").fill(app_db.database)
    page.get_by_role("button", name="Restore", exact=True).click()
    status = page.get_by_role("status")
    expect(status).to_contain_text("Restore finished", timeout=LONG)
    shot(page, screenshots, "06-restore-finished")
    assert fingerprint(app_db) == before


def test_a_wrong_typed_name_restores_nothing(
        page: Page, web_server: WebServer, app_db: DbUrl, tmp_path: Path,
        screenshots: Path) -> None:
    sign_in(page, web_server)
    path = create_backup(page, tmp_path)
    execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
    changed = fingerprint(app_db)
    review(page, path)
    page.get_by_label("Type the database name to confirm").fill(app_db.database + "x")
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("did not match")
    shot(page, screenshots, "07-typed-name-mismatch")
    assert fingerprint(app_db) == changed


def test_a_corrupt_upload_shows_the_error_and_changes_nothing(
        page: Page, web_server: WebServer, app_db: DbUrl, tmp_path: Path,
        screenshots: Path) -> None:
    sign_in(page, web_server)
    good = create_backup(page, tmp_path)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "damaged.mmops"
    bad.write_bytes(bytes(data))
    before = fingerprint(app_db)
    review(page, bad)
    expect(page.get_by_role("alert")).to_contain_text("damaged.mmops")
    shot(page, screenshots, "08-corrupt-upload")
    assert "Traceback" not in page.content()
    assert fingerprint(app_db) == before


def test_a_post_without_the_csrf_token_is_refused_with_403(
        page: Page, web_server: WebServer) -> None:
    sign_in(page, web_server)
    expect(page.get_by_role("button", name="Create backup")).to_be_visible()
    # The browser's own cookies, a form without the token: what a forged form would send.
    response = page.request.post(web_server.base_url + "/backups", form={"x": "1"})
    assert response.status == 403 and "security token" in response.text()


def test_signed_out_every_page_redirects_to_sign_in_and_no_backup_downloads(
        page: Page, web_server: WebServer, tmp_path: Path, screenshots: Path) -> None:
    sign_in(page, web_server)
    name = create_backup(page, tmp_path).name
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    for path in ("/", f"/backups/backups/{name}", "/restore/x"):
        response = page.request.get(web_server.base_url + path, max_redirects=0)
        assert response.status == 303 and response.headers["location"] == "/signin", path
    page.goto(web_server.base_url + "/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, screenshots, "09-signed-out")
