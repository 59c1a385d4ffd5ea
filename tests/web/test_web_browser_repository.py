"""The page in Debian's Chromium against the real `mmops web --repo s3://…` (SeaweedFS), with
the storage keys only in REPO_ENV_FILE: Create backup downloads the `.mmops.age` the CLI would
store, the list row restores it (AGE_IDENTITY on the server), and without an identity the row
is refused with one sentence and nothing changes. Screenshots of each page are kept."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ops.crypto.age import generate_identity
from ops.dburl import DbUrl
from tests.cli_helpers import MMOPS, url_text
from tests.web.conftest import (
    WebServer,
    axe_violations,
    execute,
    query,
    start_web,
    stop_web,
)
from tests.web.test_web_browser import LONG, fingerprint, shot, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.browser, pytest.mark.storage]


@pytest.fixture
def storage_file(seaweed, tmp_path: Path) -> Path:
    """REPO_ENV_FILE: the S3 endpoint and keys, 0600 — never in argv or the server's env."""
    path = tmp_path / "storage.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in seaweed.environ().items()))
    path.chmod(0o600)
    return path


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "key.txt"
    return key, generate_identity(key)


@pytest.fixture
def s3_server(app_db: DbUrl, password_hash: str, tmp_path: Path, s3_bucket: str,
              storage_file: Path, age_key: tuple[Path, str]) -> Iterator[WebServer]:
    key, recipient = age_key
    server = start_web(app_db, password_hash, tmp_path, "--repo", f"s3://{s3_bucket}/web",
                       "--repo-env-file", str(storage_file), "--encrypt-to", recipient,
                       "--identity", str(key))
    try:
        yield server
    finally:
        stop_web(server)


def secrets_absent(server: WebServer, page: Page, seaweed, key: Path) -> None:
    """The storage keys and the age identity: never in argv, the environment, the log or
    the page (the identity's *path* may be in argv; its secret line is only in the file)."""
    env = seaweed.environ()
    argv = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().decode(errors="replace")
    environ = Path(f"/proc/{server.proc.pid}/environ").read_bytes().decode(errors="replace")
    identity = next(line for line in key.read_text().splitlines()
                    if line.startswith("AGE-SECRET-KEY-"))
    for secret in (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], identity):
        for where in (argv, environ, server.log.read_text(), page.content()):
            assert secret not in where


def test_create_downloads_the_age_backup_stored_in_s3_and_its_list_row_restores_it(
        page: Page, s3_server: WebServer, app_db: DbUrl, seaweed, s3_bucket: str,
        age_key: tuple[Path, str], tmp_path: Path, screenshots: Path) -> None:
    key, _recipient = age_key
    sign_in(page, s3_server)
    expect(page.get_by_text(f"s3://{s3_bucket}/web", exact=True)).to_be_visible()
    before = fingerprint(app_db)
    with page.expect_download(timeout=LONG) as info:
        page.get_by_role("button", name="Create backup").click()
    download = info.value
    name = download.suggested_filename
    assert re.fullmatch(re.escape(app_db.database) + r"-\d{8}T\d{6}Z\.mmops\.age", name)
    got = tmp_path / name
    download.save_as(got)
    expect(page.get_by_role("status")).to_contain_text(f"Stored in s3://{s3_bucket}/web "
                                                       "(age-encrypted)")
    # the list shows the new backup at once (no reload), with its fields from the sidecar
    stamp = re.search(r"-(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z", name).groups()
    row = page.get_by_role("row").filter(has_text="{}-{}-{} {}:{}:{}".format(*stamp))
    revision = query(app_db, "SELECT version_num FROM alembic_version")
    expect(row.get_by_role("cell").nth(3)).to_have_text(revision)
    expect(row.get_by_role("cell").nth(4)).to_have_text("yes")
    shot(page, screenshots, "10-repository-backup-created")
    plain = tmp_path / name.removesuffix(".age")
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(got)], check=True)
    verify = subprocess.run([str(MMOPS), "verify", str(plain)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    stored = seaweed.client().get_object(Bucket=s3_bucket, Key=f"web/{name}")["Body"].read()
    assert stored == got.read_bytes()

    execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents; "
                    "UPDATE users SET display_name = 'changed'")
    page.reload()
    expect(row).to_have_count(1)
    expect(row.get_by_role("cell").nth(3)).to_have_text(revision)
    expect(row.get_by_role("cell").nth(4)).to_have_text("yes")
    shot(page, screenshots, "11-repository-list")
    row.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("heading", name="Review restore")).to_be_visible(timeout=LONG)
    expect(page.get_by_text(name, exact=True)).to_be_visible()
    shot(page, screenshots, "12-repository-review")
    page.get_by_label("Type the database name to confirm").fill(app_db.database)
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Restore finished", timeout=LONG)
    shot(page, screenshots, "13-repository-restore-finished")
    assert fingerprint(app_db) == before
    secrets_absent(s3_server, page, seaweed, key)


def test_an_encrypted_row_without_an_identity_is_refused_and_changes_nothing(
        page: Page, app_db: DbUrl, password_hash: str, seaweed, s3_bucket: str,
        storage_file: Path, age_key: tuple[Path, str], tmp_path: Path,
        screenshots: Path, axe_source: str) -> None:
    key, recipient = age_key
    repo = f"s3://{s3_bucket}/web"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(seaweed.environ(), DATABASE_URL=url_text(app_db))
    res = subprocess.run([str(MMOPS), "backup", "-o", str(tmp_path / "laptop"), "--repo", repo,
                          "--encrypt-to", recipient], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    execute(app_db, "DELETE FROM document_recovery")
    changed = fingerprint(app_db)
    server = start_web(app_db, password_hash, tmp_path, "--repo", repo,
                       "--repo-env-file", str(storage_file))
    try:
        sign_in(page, server)
        row = page.get_by_role("row").filter(has_text=app_db.database)
        expect(row.get_by_role("cell").nth(4)).to_have_text("yes")
        row.get_by_role("button", name="Restore").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("is age-encrypted and this server has no identity")
        expect(status).to_contain_text("nothing was changed")
        # the refusal takes focus (a keyboard or screen reader user lands on it)
        expect(page.locator(":focus")).to_contain_text("is age-encrypted")
        assert "Traceback" not in page.content()
        shot(page, screenshots, "14-encrypted-row-without-identity")
        assert axe_violations(page, axe_source) == []
        secrets_absent(server, page, seaweed, key)
    finally:
        stop_web(server)
    assert fingerprint(app_db) == changed
