"""The page over a repository (`mmops web --repo R`): a local directory, a real S3 server
(SeaweedFS) and a GCS emulator (fake-gcs-server). The list comes from the backups' sidecars,
downloads stream from the store, Create backup publishes there (age-encrypted with
ENCRYPT_TO), a list row restores, and an encrypted backup needs AGE_IDENTITY on the server —
without it nothing changes."""

from __future__ import annotations

import html
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ops.archive import verify_archive
from ops.crypto.age import generate_identity
from ops.dburl import DbUrl
from ops.web import WebSettings, create_app
from tests.cli_helpers import MMOPS, url_text
from tests.web.conftest import execute, query, sign_in

pytestmark = pytest.mark.postgres

TABLES = ("users", "documents", "custom_dictionaries", "document_recovery")
STORAGE_PREFIXES = ("AWS_", "REPO", "MMOPS_REPO", "ENCRYPT_TO", "AGE_IDENTITY",
                    "STORAGE_EMULATOR_HOST", "BACKUP_DIR")


def fingerprint(url: DbUrl) -> dict[str, str]:
    return {t: query(url, f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' "
                          f"ORDER BY x::text)), '') FROM {t} x") for t in TABLES}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STORAGE_PREFIXES)}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MMOPS), *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "key.txt"
    return key, generate_identity(key)


@pytest.fixture(params=["dir", "s3", "gs"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(REPO, its storage settings): a local directory, a fresh SeaweedFS bucket or a fresh
    fake-gcs-server bucket."""
    if request.param == "dir":
        return str(tmp_path / "repo"), {}
    request.applymarker(pytest.mark.storage)
    if request.param == "gs":
        fake_gcs = request.getfixturevalue("fake_gcs")
        return f"gs://{request.getfixturevalue('gcs_bucket')}/db", fake_gcs.environ()
    seaweed = request.getfixturevalue("seaweed")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/db", seaweed.environ()


def stored_names(repo: str, storage: dict[str, str]) -> list[str]:
    import json

    res = cli("repo", "--repo", repo, "list", "--json", env=clean_env(**storage))
    assert res.returncode == 0, res.stderr
    return [b["name"] for b in json.loads(res.stdout)["backups"]]


def fetch(repo: str, storage: dict[str, str], name: str, dest: Path) -> Path:
    """A stored object's bytes, read with the repository protocol (not through the page)."""
    from ops.repository import iter_read, open_repository

    source = open_repository(repo, environ=clean_env(**storage)).open(name)
    try:
        dest.write_bytes(b"".join(iter_read(source)))
    finally:
        source.close()
    return dest


def age_decrypt(key: Path, encrypted: Path) -> Path:
    plain = encrypted.with_name(encrypted.name.removesuffix(".age"))
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(encrypted)], check=True)
    return plain


def settings_for(web_settings: WebSettings, repo: str, storage: dict[str, str], **kw: object
                 ) -> WebSettings:
    # The storage keys reach the app as REPO_ENV_FILE's settings do: never via os.environ.
    return replace(web_settings, repo=repo, storage_env=storage, **kw)  # type: ignore[arg-type]


def row_of(page: str, name: str) -> str:
    """The list row of exactly ``name`` (``x.mmops`` must not find ``x.mmops.age``: two
    backups made in the same second share the stamp)."""
    m = re.search(r"<tr>(?:(?!</tr>).)*?" + re.escape(name) + r"(?![\w.-]).*?</tr>", page, re.S)
    assert m, f"{name} is not listed"
    return m.group(0)


def review_path(response) -> str:
    m = re.search(r'action="(/restore/[^/"]+)" data-job="restore"', response.text)
    assert m, response.text
    return m.group(1)


def test_the_list_shows_the_repositorys_backups_from_their_sidecars(
        app_db: DbUrl, web_settings: WebSettings, repo: tuple[str, dict[str, str]],
        age_key: tuple[Path, str], tmp_path: Path) -> None:
    where, storage = repo
    _key, recipient = age_key
    env = clean_env(**storage, DATABASE_URL=url_text(app_db))
    for extra in ((), ("--encrypt-to", recipient)):
        res = cli("backup", "-o", str(tmp_path / "laptop"), "--repo", where, *extra, env=env)
        assert res.returncode == 0, res.stderr
    names = stored_names(where, storage)
    assert sorted(n.endswith(".age") for n in names) == [False, True]
    revision = query(app_db, "SELECT version_num FROM alembic_version")
    with TestClient(create_app(settings_for(web_settings, where, storage)),
                    base_url="http://127.0.0.1") as c:
        sign_in(c)
        page = c.get("/").text
    assert f"Backups in {where}" in page
    for name in names:
        row = row_of(page, name)
        # date, database, size, alembic revision (the encrypted one's too: no identity here),
        # encrypted, and the two actions
        created = re.search(r"-(\d{8}T\d{6})Z", name).group(1)
        assert f'datetime="{created[:4]}-{created[4:6]}-{created[6:8]}T' in row
        assert f'<td data-label="Database">{app_db.database}</td>' in row
        assert re.search(r'<td data-label="Size">\d+(\.\d)? (KiB|MiB|Bytes)</td>', row), row
        assert f"<code>{revision}</code>" in row
        encrypted = "yes" if name.endswith(".age") else "no"
        assert f'<td data-label="Encrypted">{encrypted}</td>' in row
        assert ">Download</a>" in row and ">Restore</button>" in row
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if name in storage:
            assert storage[name] not in page


def test_download_streams_a_repository_backup_that_verifies(
        client_for, app_db: DbUrl, web_settings: WebSettings,
        repo: tuple[str, dict[str, str]], age_key: tuple[Path, str], tmp_path: Path) -> None:
    where, storage = repo
    key, recipient = age_key
    env = clean_env(**storage, DATABASE_URL=url_text(app_db))
    for extra in ((), ("--encrypt-to", recipient)):
        res = cli("backup", "-o", str(tmp_path / "laptop"), "--repo", where, *extra, env=env)
        assert res.returncode == 0, res.stderr
    names = stored_names(where, storage)
    with client_for(settings_for(web_settings, where, storage)) as c:
        sign_in(c)
        for name in names:
            r = c.get(f"/backups/backups/{name}")
            assert r.status_code == 200
            assert f'filename="{name}"' in r.headers["content-disposition"]
            assert r.headers["content-length"] == str(len(r.content))
            got = tmp_path / "got" / name
            got.parent.mkdir(exist_ok=True)
            got.write_bytes(r.content)
            assert r.content == fetch(where, storage, name, tmp_path / f"direct-{name}"
                                      ).read_bytes()
            plain = age_decrypt(key, got) if name.endswith(".age") else got
            verify = cli("verify", str(plain), env=clean_env())
            assert verify.returncode == 0, verify.stderr
        missing = c.get(f"/backups/backups/{app_db.database}-20200101T000000Z.mmops")
        assert missing.status_code in (404, 507) and "does not exist" in missing.text


@pytest.fixture
def client_for():
    def make(settings: WebSettings) -> TestClient:
        return TestClient(create_app(settings), base_url="http://127.0.0.1")
    return make


def test_create_backup_with_encrypt_to_downloads_the_age_file_stored_in_the_repository(
        client_for, app_db: DbUrl, web_settings: WebSettings,
        repo: tuple[str, dict[str, str]], age_key: tuple[Path, str], tmp_path: Path) -> None:
    where, storage = repo
    key, recipient = age_key
    settings = settings_for(web_settings, where, storage, encrypt_to=recipient)
    with client_for(settings) as c:
        csrf = sign_in(c)
        r = c.post("/backups", data={"csrf_token": csrf})
        assert r.status_code == 200, r.text
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
        assert re.fullmatch(re.escape(app_db.database) + r"-\d{8}T\d{6}Z\.mmops\.age", name)
        got = tmp_path / name
        got.write_bytes(r.content)
        assert r.content.startswith(b"age-encryption.org/v1")
        verify_archive(age_decrypt(key, got))  # stock `age -d` opens it
        assert stored_names(where, storage) == [name]
        assert fetch(where, storage, name, tmp_path / "stored.age").read_bytes() == r.content
        page = c.get("/").text
        assert '<td data-label="Encrypted">yes</td>' in row_of(page, name)
        # no plain copy stays behind in the private work dir
        assert list(web_settings.tmp_root.rglob("*.mmops")) == []  # type: ignore[union-attr]


def test_restore_from_a_list_row_brings_the_backup_back(
        client_for, app_db: DbUrl, web_settings: WebSettings,
        repo: tuple[str, dict[str, str]], age_key: tuple[Path, str]) -> None:
    where, storage = repo
    key, recipient = age_key
    settings = settings_for(web_settings, where, storage, encrypt_to=recipient,
                            identity=str(key))
    before = fingerprint(app_db)
    with client_for(settings) as c:
        csrf = sign_in(c)
        r = c.post("/backups", data={"csrf_token": csrf})
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
        execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents; "
                        "UPDATE users SET display_name = 'changed'")
        review = c.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                                 "name": name})
        assert review.status_code == 200, review.text
        assert "Review restore" in review.text and "public.documents" in review.text
        assert name in review.text and str(web_settings.tmp_root) not in review.text
        done = c.post(review_path(review), data={"csrf_token": csrf,
                                                 "confirm_name": app_db.database})
        assert done.status_code == 200, done.text
        assert "Restore finished" in done.text
        # the download and the decrypted copy went with the review
        work = c.app.state.web.workspace.path  # type: ignore[attr-defined]
        assert list((work / "uploads").glob("*")) == []
    assert fingerprint(app_db) == before


def test_an_encrypted_row_without_an_identity_is_refused_and_changes_nothing(
        client_for, app_db: DbUrl, web_settings: WebSettings,
        repo: tuple[str, dict[str, str]], age_key: tuple[Path, str]) -> None:
    where, storage = repo
    _key, recipient = age_key
    with client_for(settings_for(web_settings, where, storage, encrypt_to=recipient)) as c:
        csrf = sign_in(c)
        r = c.post("/backups", data={"csrf_token": csrf})
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
        execute(app_db, "DELETE FROM document_recovery")
        changed = fingerprint(app_db)
        refused = c.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                                  "name": name})
        assert refused.status_code == 409
        text = html.unescape(refused.text)
        assert (f"Backup {name} is age-encrypted and this server has no identity to open it"
                in text and "nothing was changed" in text and 'role="alert"' in text)
        assert "Type the database name" not in text and "Traceback" not in text
        work = c.app.state.web.workspace.path  # type: ignore[attr-defined]
        assert list((work / "uploads").glob("*")) == []
    assert fingerprint(app_db) == changed


def test_an_uploaded_age_file_restores_with_an_identity_and_is_refused_without(
        client_for, app_db: DbUrl, web_settings: WebSettings, age_key: tuple[Path, str],
        tmp_path: Path) -> None:
    key, recipient = age_key
    before = fingerprint(app_db)
    with client_for(replace(web_settings, encrypt_to=recipient)) as c:
        csrf = sign_in(c)
        r = c.post("/backups", data={"csrf_token": csrf})
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
        assert name.endswith(".mmops.age")
        encrypted = tmp_path / name
        encrypted.write_bytes(r.content)
        execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
        changed = fingerprint(app_db)
        with encrypted.open("rb") as fh:
            refused = c.post("/restore/upload", data={"csrf_token": csrf},
                             files={"backup": (name, fh, "application/octet-stream")})
        assert refused.status_code == 409
        assert f"{name} is age-encrypted; decrypt it first" in html.unescape(refused.text)
    assert fingerprint(app_db) == changed
    with client_for(replace(web_settings, identity=str(key))) as c:
        csrf = sign_in(c)
        with encrypted.open("rb") as fh:
            review = c.post("/restore/upload", data={"csrf_token": csrf},
                            files={"backup": (name, fh, "application/octet-stream")})
        assert review.status_code == 200, review.text
        done = c.post(review_path(review), data={"csrf_token": csrf,
                                                 "confirm_name": app_db.database})
        assert "Restore finished" in done.text, done.text
    assert fingerprint(app_db) == before


@pytest.mark.storage
def test_a_wrong_storage_secret_or_identity_is_one_sentence_and_changes_nothing(
        client_for, app_db: DbUrl, web_settings: WebSettings, seaweed, s3_bucket: str,
        age_key: tuple[Path, str], tmp_path: Path) -> None:
    _key, recipient = age_key
    where = f"s3://{s3_bucket}/db"
    wrong = seaweed.environ(AWS_SECRET_ACCESS_KEY="not-the-secret-" + "x" * 20)
    before = fingerprint(app_db)
    with client_for(settings_for(web_settings, where, wrong, encrypt_to=recipient)) as c:
        csrf = sign_in(c)
        page = c.get("/")
        assert page.status_code == 200 and 'role="alert"' in page.text
        assert "Create backup" in page.text and "Traceback" not in page.text
        assert "No backups yet" not in page.text  # unknown, not empty
        r = c.post("/backups", data={"csrf_token": csrf})
        assert r.status_code >= 400 and 'role="alert"' in r.text and s3_bucket in r.text
        for text in (page.text, r.text):
            assert wrong["AWS_SECRET_ACCESS_KEY"] not in text
            assert seaweed.secret_key not in text
        # the failed upload left no plain copy behind
        assert list(web_settings.tmp_root.rglob("*.mmops")) == []  # type: ignore[union-attr]
    assert stored_names(where, seaweed.environ()) == []

    other = tmp_path / "other-key.txt"
    generate_identity(other)
    settings = settings_for(web_settings, where, seaweed.environ(), encrypt_to=recipient)
    with client_for(settings) as c:
        csrf = sign_in(c)
        r = c.post("/backups", data={"csrf_token": csrf})
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
    execute(app_db, "DELETE FROM document_recovery")
    changed = fingerprint(app_db)
    assert changed != before
    with client_for(replace(settings, identity=str(other))) as c:
        csrf = sign_in(c)
        r = c.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                            "name": name})
        text = html.unescape(r.text)
        assert r.status_code >= 400 and "does not match any recipient" in text, text
        assert "Traceback" not in text and str(web_settings.tmp_root) not in text
        work = c.app.state.web.workspace.path  # type: ignore[attr-defined]
        assert list((work / "uploads").glob("*")) == []
    assert fingerprint(app_db) == changed


def follow_job(c: TestClient, job_url: str) -> dict:
    seen: list[str] = []
    while (state := c.get(job_url, headers={"Accept": "application/json"}).json())[
            "state"] == "running":
        seen += state["phases"]
    state["seen"] = seen + state["phases"]
    return state


@pytest.mark.storage
def test_a_list_row_restore_is_a_job_the_page_follows_through_the_download(
        client_for, app_db: DbUrl, web_settings: WebSettings, seaweed, s3_bucket: str,
        age_key: tuple[Path, str]) -> None:
    key, recipient = age_key
    settings = settings_for(web_settings, f"s3://{s3_bucket}/db", seaweed.environ(),
                            encrypt_to=recipient, identity=str(key))
    before = fingerprint(app_db)
    with client_for(settings) as c:
        csrf = sign_in(c)
        r = c.post("/backups", data={"csrf_token": csrf})
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
        execute(app_db, "DELETE FROM document_recovery; DELETE FROM documents")
        r = c.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                            "name": name}, headers={"Accept": "application/json"})
        assert r.status_code == 202, r.text
        state = follow_job(c, r.json()["job"])
        assert state["state"] == "done", state
        assert any(p.startswith(f"download: {name}") for p in state["seen"]), state
        assert any(p.startswith("verify:") for p in state["seen"]), state
        review = c.get(state["review_url"])
        assert review.status_code == 200 and "Type the database name to confirm" in review.text
        done = c.post(review_path(review), data={"csrf_token": csrf,
                                                 "confirm_name": app_db.database})
        assert "Restore finished" in done.text
    assert fingerprint(app_db) == before


def test_a_refused_list_row_shows_why_and_its_review_cannot_be_restored(
        client_for, app_db: DbUrl, make_db, web_settings: WebSettings, tmp_path: Path) -> None:
    where = str(tmp_path / "shared-repo")
    other = make_db()
    execute(other, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    with client_for(replace(web_settings, database_url=other, repo=where)) as c:
        r = c.post("/backups", data={"csrf_token": sign_in(c)})
        name = re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1)
    before = fingerprint(app_db)
    with client_for(replace(web_settings, repo=where)) as c:
        csrf = sign_in(c)
        assert name in c.get("/").text  # the other database's backup is listed too
        r = c.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                            "name": name}, headers={"Accept": "application/json"})
        state = follow_job(c, r.json()["job"])
        review = c.get(state["review_url"])
        assert review.status_code == 409
        assert f"The backup is of database {other.database!r}" in html.unescape(review.text)
        assert "Type the database name to confirm" not in review.text
        forged = c.post(state["review_url"], data={"csrf_token": csrf,
                                                   "confirm_name": app_db.database})
        assert forged.status_code == 409 and "nothing was changed" in forged.text
        plain = c.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                                "name": name})
        assert plain.status_code == 409 and "Refused" in plain.text
        assert "Type the database name to confirm" not in plain.text
    assert fingerprint(app_db) == before
