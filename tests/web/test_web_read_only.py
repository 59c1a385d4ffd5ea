"""`mmops web` on a read-only system: the root filesystem (working directory and home
included) mounted read-only in a private mount namespace, TMPDIR the one writable place.
Backup, download, upload and restore all work, and TMPDIR is empty again after it stops."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from ops.dburl import DbUrl
from tests.web.conftest import PASSWORD, csrf_of, execute, query, start_web, stop_web

pytestmark = pytest.mark.postgres

# Inside `unshare -m`: TMPDIR becomes its own (writable) mount, then / is remounted read-only.
READ_ONLY = ("unshare", "--mount", "sh", "-c",
             'mount --make-rprivate / && mount --bind "$TMPDIR" "$TMPDIR" && '
             'mount -o remount,bind,ro / && exec "$0" "$@"')


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a private read-only mount namespace needs root and unshare")
def test_the_page_backs_up_and_restores_with_only_tmpdir_writable(
        app_db: DbUrl, password_hash: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = start_web(app_db, password_hash, tmp_path, cwd=home, home=home,
                       wrapper=READ_ONLY)
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            page = client.get("/signin")
            page = client.post("/signin", data={"password": PASSWORD,
                                                "csrf_token": csrf_of(page.text)},
                               follow_redirects=True)
            csrf = csrf_of(page.text)
            backup = client.post("/backups", data={"csrf_token": csrf})
            assert backup.status_code == 200, backup.text
            before = query(app_db, "SELECT count(*) FROM documents")
            execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
            review = client.post("/restore/upload", data={"csrf_token": csrf},
                                 files={"backup": ("b.mmops", backup.content)},
                                 follow_redirects=True)
            action = re.search(r'action="(/restore/[^/"]+)" data-job', review.text).group(1)
            done = client.post(action, data={"csrf_token": csrf,
                                             "confirm_name": app_db.database})
            assert "Restore finished" in done.text, done.text
        assert query(app_db, "SELECT count(*) FROM documents") == before
        assert list(home.iterdir()) == []
        work = [p for p in server.tmpdir.iterdir()]
        assert len(work) == 1 and (os.stat(work[0]).st_mode & 0o777) == 0o700
    finally:
        stop_web(server)
    assert list(server.tmpdir.iterdir()) == [], "the private work dir outlived the server"
    assert "Read-only file system" not in server.log.read_text()


@pytest.mark.storage
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a private read-only mount namespace needs root and unshare")
def test_with_an_s3_repository_and_encryption_only_tmpdir_is_written_too(
        app_db: DbUrl, password_hash: str, tmp_path: Path, seaweed, s3_bucket: str) -> None:
    from ops.crypto.age import generate_identity

    home = tmp_path / "home"
    home.mkdir()
    key = tmp_path / "key.txt"
    recipient = generate_identity(key)
    storage = tmp_path / "storage.env"
    storage.write_text("".join(f"{k}={v}\n" for k, v in seaweed.environ().items()))
    storage.chmod(0o600)
    server = start_web(app_db, password_hash, tmp_path, "--repo", f"s3://{s3_bucket}/ro",
                       "--repo-env-file", str(storage), "--encrypt-to", recipient,
                       "--identity", str(key), cwd=home, home=home, wrapper=READ_ONLY)
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            page = client.get("/signin")
            page = client.post("/signin", data={"password": PASSWORD,
                                                "csrf_token": csrf_of(page.text)},
                               follow_redirects=True)
            csrf = csrf_of(page.text)
            backup = client.post("/backups", data={"csrf_token": csrf})
            assert backup.status_code == 200, backup.text
            name = re.search(r'filename="([^"]+)"', backup.headers["content-disposition"]
                             ).group(1)
            assert name.endswith(".mmops.age")
            before = query(app_db, "SELECT count(*) FROM documents")
            execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
            review = client.post("/restore/stored", data={"csrf_token": csrf,
                                                          "place": "backups", "name": name},
                                 follow_redirects=True)
            action = re.search(r'action="(/restore/[^/"]+)" data-job', review.text).group(1)
            done = client.post(action, data={"csrf_token": csrf,
                                             "confirm_name": app_db.database})
            assert "Restore finished" in done.text, done.text
        assert query(app_db, "SELECT count(*) FROM documents") == before
        assert list(home.iterdir()) == []
    finally:
        stop_web(server)
    assert list(server.tmpdir.iterdir()) == [], "the private work dir outlived the server"
    assert "Read-only file system" not in server.log.read_text()
