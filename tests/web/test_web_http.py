"""The page over HTTP (Starlette's TestClient) against a real PostgreSQL: sign-in, CSRF,
create → download, upload → plan → typed name → restore, and what is refused."""

from __future__ import annotations

import html
import re
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ops.archive import verify_archive
from ops.dburl import DbUrl
from ops.web import WebSettings, create_app
from ops.web import sessions as sessions_module
from tests.web.conftest import PASSWORD, csrf_of, execute, query, sign_in

pytestmark = pytest.mark.postgres

NAME_RE = r"t\d+_\d+-\d{8}T\d{6}Z\.mmops"


def create_backup(client: TestClient, csrf: str, tmp_path: Path) -> Path:
    r = client.post("/backups", data={"csrf_token": csrf})
    assert r.status_code == 200, r.text
    name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
    path = tmp_path / name
    path.write_bytes(r.content)
    return path


def upload(client: TestClient, csrf: str | None, path: Path, name: str | None = None):
    data = {"csrf_token": csrf} if csrf is not None else {}
    with path.open("rb") as fh:
        return client.post("/restore/upload", data=data,
                           files={"backup": (name or path.name, fh, "application/octet-stream")})


def review_path(response) -> str:
    m = re.search(r'action="(/restore/[^/"]+)" data-job="restore"', response.text)
    assert m, response.text
    return m.group(1)


def test_wrong_password_shows_an_error_and_gives_no_session(client: TestClient) -> None:
    page = client.get("/signin")
    r = client.post("/signin", data={"password": "not it", "csrf_token": csrf_of(page.text)})
    assert r.status_code == 401
    assert "Wrong password" in r.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"


def test_signed_out_every_page_redirects_to_signin_and_no_backup_downloads(
        client: TestClient, web_settings: WebSettings, tmp_path: Path) -> None:
    csrf = sign_in(client)
    name = create_backup(client, csrf, tmp_path).name
    client.post("/signout", data={"csrf_token": csrf})
    for path in ("/", f"/backups/backups/{name}", "/restore/abc", "/jobs/abc", "/nowhere"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/signin", path
    for path in ("/backups", "/restore/upload", "/restore/stored", "/restore/abc"):
        r = client.post(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/signin", path


def test_state_changing_posts_without_the_csrf_token_are_refused_with_403(
        client: TestClient, signed_in: str, web_settings: WebSettings, tmp_path: Path) -> None:
    r = client.post("/backups", data={})
    assert r.status_code == 403 and "security token" in r.text
    r = client.post("/backups", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert "No backups yet" in client.get("/").text
    junk = tmp_path / "x.mmops"
    junk.write_bytes(b"x" * 1000)
    assert upload(client, None, junk).status_code == 403
    assert upload(client, "forged", junk).status_code == 403
    workdirs = list(web_settings.tmp_root.glob("mmops-web-*/uploads/*"))  # type: ignore[union-attr]
    assert workdirs == []
    page = client.get("/signin")  # signed in: redirected to the page, which still works
    assert "Create backup" in page.text


def test_sign_in_without_the_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/signin")
    r = client.post("/signin", data={"password": PASSWORD})
    assert r.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_create_backup_downloads_a_verified_file_named_like_the_cli_and_lists_it(
        client: TestClient, signed_in: str, app_db: DbUrl, tmp_path: Path) -> None:
    path = create_backup(client, signed_in, tmp_path)
    assert re.fullmatch(NAME_RE, path.name) and path.name.startswith(app_db.database)
    assert verify_archive(path).members > 0
    page = client.get("/").text
    assert path.name in page and "Download" in page
    again = client.get(f"/backups/backups/{path.name}")
    assert again.content == path.read_bytes()


def test_upload_plan_typed_name_and_restore_bring_the_data_back(
        client: TestClient, signed_in: str, app_db: DbUrl, tmp_path: Path) -> None:
    before = query(app_db, "SELECT count(*) FROM documents")
    path = create_backup(client, signed_in, tmp_path)
    execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
    review = upload(client, signed_in, path)
    assert review.status_code == 200
    text = review.text
    for expected in ("Review restore", app_db.database, "public.documents",
                     "Type the database name to confirm", "Alembic revision"):
        assert expected in text
    r = client.post(review_path(review), data={"csrf_token": signed_in,
                                               "confirm_name": app_db.database})
    assert r.status_code == 200, r.text
    assert "Restore finished" in r.text and 'role="status"' in r.text
    assert query(app_db, "SELECT count(*) FROM documents") == before
    safety = client.get("/").text
    assert "Safety backups" in safety and "safety-" in safety


def test_a_wrong_typed_name_restores_nothing(
        client: TestClient, signed_in: str, app_db: DbUrl, tmp_path: Path) -> None:
    path = create_backup(client, signed_in, tmp_path)
    execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
    review = upload(client, signed_in, path)
    r = client.post(review_path(review), data={"csrf_token": signed_in,
                                               "confirm_name": "postgres"})
    assert r.status_code == 409
    assert "did not match" in r.text and "nothing was changed" in r.text
    assert query(app_db, "SELECT count(*) FROM documents") == 0


def test_a_corrupt_upload_shows_the_error_and_changes_nothing(
        client: TestClient, signed_in: str, app_db: DbUrl, web_settings: WebSettings,
        tmp_path: Path) -> None:
    good = create_backup(client, signed_in, tmp_path)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "damaged.mmops"
    bad.write_bytes(bytes(data))
    before = query(app_db, "SELECT count(*) FROM documents")
    r = upload(client, signed_in, bad)
    assert r.status_code == 422
    assert 'role="alert"' in r.text and "Traceback" not in r.text
    assert query(app_db, "SELECT count(*) FROM documents") == before
    assert list(web_settings.tmp_root.glob("mmops-web-*/uploads/*")) == []  # type: ignore[union-attr]


def test_a_backup_of_another_database_shows_the_refusal_and_offers_no_restore(
        client: TestClient, signed_in: str, make_db, password_hash: str, tmp_path: Path,
        app_db: DbUrl) -> None:
    other = make_db()
    execute(other, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    settings = WebSettings(database_url=other, password_hash=password_hash,
                           secure_cookies=False, tmp_root=tmp_path)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as other_client:
        path = create_backup(other_client, sign_in(other_client), tmp_path)
    r = upload(client, signed_in, path)
    assert r.status_code == 409
    assert f"The backup is of database {other.database!r}" in html.unescape(r.text)
    assert "Type the database name to confirm" not in r.text
    assert query(app_db, "SELECT count(*) FROM users") > 0


def test_restore_from_the_list_of_stored_backups(
        client: TestClient, signed_in: str, app_db: DbUrl, tmp_path: Path) -> None:
    path = create_backup(client, signed_in, tmp_path)
    execute(app_db, "UPDATE users SET display_name = 'changed'")
    review = client.post("/restore/stored", data={"csrf_token": signed_in, "place": "backups",
                                                  "name": path.name})
    assert review.status_code == 200 and "Review restore" in review.text
    r = client.post(review_path(review), data={"csrf_token": signed_in,
                                               "confirm_name": app_db.database})
    assert "Restore finished" in r.text
    assert query(app_db, "SELECT count(*) FROM users WHERE display_name = 'changed'") == 0


def test_a_stored_backup_outside_the_repository_is_refused(
        client: TestClient, signed_in: str) -> None:
    for place, name in (("backups", "../../etc/passwd"), ("elsewhere", "x-20260101T000000Z.mmops"),
                        ("backups", "x-20260101T000000Z.mmops")):
        r = client.post("/restore/stored", data={"csrf_token": signed_in, "place": place,
                                                 "name": name})
        assert r.status_code in (404, 507) and "Traceback" not in r.text


def test_the_page_follows_a_backup_job_and_then_downloads_it(
        client: TestClient, signed_in: str) -> None:
    r = client.post("/backups", data={"csrf_token": signed_in},
                    headers={"Accept": "application/json"})
    assert r.status_code == 202
    job_url = r.json()["job"]
    while (state := client.get(job_url, headers={"Accept": "application/json"}).json())[
            "state"] == "running":
        pass
    assert state["state"] == "done", state
    assert "every checksum verified" in state["message"]
    download = client.get(state["download_url"])
    assert download.status_code == 200 and download.content[:4] != b"<!do"


def test_security_headers_and_cookie_flags(client: TestClient) -> None:
    r = client.get("/signin")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # bound to loopback: plain HTTP
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # no inline script ...
    assert not re.search(r"\son\w+=", r.text)  # ... nor inline event handlers


def test_the_cookie_is_secure_unless_bound_to_loopback(web_settings: WebSettings) -> None:
    from dataclasses import replace

    with TestClient(create_app(replace(web_settings, secure_cookies=True)),
                    base_url="https://db.example") as c:
        r = c.get("/signin")
        assert "secure" in r.headers["set-cookie"].lower()
        assert "strict-transport-security" in r.headers


def test_sign_in_is_rate_limited_per_address(client: TestClient) -> None:
    csrf = csrf_of(client.get("/signin").text)
    for _ in range(5):
        r = client.post("/signin", data={"password": "bad", "csrf_token": csrf})
        assert r.status_code == 401
    r = client.post("/signin", data={"password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_idle_session_ends(client: TestClient, signed_in: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = sessions_module.time.monotonic
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: real() + 16 * 60)
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin"


def test_signing_out_ends_the_session(client: TestClient, signed_in: str) -> None:
    cookie = client.cookies.get("mmops_session")
    client.post("/signout", data={"csrf_token": signed_in})
    client.cookies.set("mmops_session", cookie)  # the old cookie no longer works
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_page_works_under_a_root_path(web_settings: WebSettings, tmp_path: Path) -> None:
    from dataclasses import replace

    with TestClient(create_app(replace(web_settings, root_path="/admin/db/")),
                    base_url="http://127.0.0.1") as c:
        page = c.get("/admin/db/signin")
        assert page.status_code == 200
        assert 'action="/admin/db/signin"' in page.text
        assert 'href="/admin/db/static/app.css"' in page.text
        assert "path=/admin/db" in page.headers["set-cookie"].lower()
        r = c.post("/admin/db/signin", data={"password": PASSWORD,
                                             "csrf_token": csrf_of(page.text)})
        assert r.status_code == 200 and 'action="/admin/db/backups"' in r.text


def test_uploads_are_private_files_removed_after_use_and_the_work_dir_at_shutdown(
        web_settings: WebSettings, app_db: DbUrl, tmp_path: Path) -> None:
    app = create_app(web_settings)
    work = app.state.web.workspace.path
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert work.parent == web_settings.tmp_root
    with TestClient(app, base_url="http://127.0.0.1") as c:
        csrf = sign_in(c)
        path = create_backup(c, csrf, tmp_path)
        kept = list((work / "backups").glob("*.mmops"))
        assert [stat.S_IMODE(p.stat().st_mode) for p in kept] == [0o600]
        review = upload(c, csrf, path)
        (uploaded,) = (work / "uploads").glob("*/*")
        assert stat.S_IMODE(uploaded.stat().st_mode) == 0o600
        assert stat.S_IMODE(uploaded.parent.stat().st_mode) == 0o700
        c.post(review_path(review), data={"csrf_token": csrf, "confirm_name": app_db.database})
        assert list((work / "uploads").glob("*/*")) == []
    assert not work.exists()
    assert sorted(p.name for p in web_settings.tmp_root.iterdir()) == []  # type: ignore[union-attr]
