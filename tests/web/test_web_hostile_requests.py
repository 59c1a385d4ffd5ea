"""Requests no browser sends, against the real `mmops web`: malformed forms, unknown backups,
uploads while another job runs, forms with thousands of fields. Each gets one sentence with a
4xx status, the log holds no traceback, and nothing is kept."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.dburl import DbUrl
from tests.web.conftest import PASSWORD, WebServer, csrf_of, execute
from tests.web.test_web_http import create_backup

pytestmark = pytest.mark.postgres

BOUNDARY = "b0undary"


def signed_in_client(server: WebServer) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.base_url, timeout=120)
    page = client.get("/signin")
    r = client.post("/signin", data={"password": PASSWORD, "csrf_token": csrf_of(page.text)},
                    follow_redirects=True)
    assert r.status_code == 200 and "Create backup" in r.text
    return client, csrf_of(r.text)


@pytest.fixture
def signed_in(web_server: WebServer) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = signed_in_client(web_server)
    try:
        yield client, csrf
    finally:
        client.close()


def uploads_left(server: WebServer) -> list[Path]:
    return list(server.tmpdir.glob("mmops-web-*/uploads/*"))


def the_message(r: httpx.Response) -> str:
    m = re.search(r'role="alert"[^>]*>([^<]*)<', r.text)
    assert m, r.text
    return html.unescape(m.group(1))


def part(name: str, value: str) -> str:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n")


def test_a_malformed_form_is_400_in_one_sentence_and_logs_no_traceback(
        web_server: WebServer, signed_in: tuple[httpx.Client, str]) -> None:
    client, csrf = signed_in
    multipart = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    bodies = {
        "not multipart at all": b"garbage",
        "a header line without a colon": (part("csrf_token", csrf) + f"--{BOUNDARY}\r\n"
                                          "bad header line\r\n\r\nx\r\n").encode(),
        "a boundary without its CRLF": part("csrf_token", csrf).encode() + b"--" +
        BOUNDARY.encode() + b"zz",
        "cut off inside the file": (part("csrf_token", csrf) + f"--{BOUNDARY}\r\n"
                                    'Content-Disposition: form-data; name="backup"; '
                                    'filename="x.mmops"\r\n\r\nMMOPS').encode(),
    }
    for what, body in bodies.items():
        for path in ("/restore/upload", "/backups", "/restore/stored", "/signout"):
            r = client.post(path, content=body, headers=multipart)
            assert r.status_code in (400, 403), (what, path, r.status_code, r.text[:300])
            if path == "/restore/upload":
                assert r.status_code == 400, (what, r.text[:300])
                message = the_message(r)
                assert message.count(". ") <= 2 and "nothing was changed" in message, message
    assert uploads_left(web_server) == []
    log = web_server.log.read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
    assert client.get("/").status_code == 200  # still signed in, still serving


def test_an_unknown_backup_is_404_not_a_storage_failure(
        signed_in: tuple[httpx.Client, str], app_db: DbUrl) -> None:
    client, csrf = signed_in
    missing = f"{app_db.database}-20200101T000000Z.mmops"
    for path in (f"/backups/backups/{missing}", f"/backups/safety/{missing}",
                 "/backups/elsewhere/x.mmops", "/backups/backups/not-a-backup.txt"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "Traceback" not in r.text
    r = client.post("/restore/stored", data={"csrf_token": csrf, "place": "backups",
                                             "name": missing})
    assert r.status_code == 404 and "does not exist" in the_message(r)


def test_an_upload_waits_its_turn_in_the_one_job_runner(
        web_server: WebServer, signed_in: tuple[httpx.Client, str], app_db: DbUrl,
        tmp_path: Path) -> None:
    client, csrf = signed_in
    good = create_backup(client, csrf, tmp_path)
    # A table large enough that the backup below is still running when the upload arrives.
    execute(app_db, "CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS body "
                    "FROM generate_series(1, 400000) g")
    r = client.post("/backups", data={"csrf_token": csrf},
                    headers={"Accept": "application/json"})
    assert r.status_code == 202
    job = r.json()["job"]
    with good.open("rb") as fh:
        refused = client.post("/restore/upload", data={"csrf_token": csrf},
                              files={"backup": (good.name, fh, "application/octet-stream")})
    assert client.get(job, headers={"Accept": "application/json"}).json()["state"] == "running"
    assert refused.status_code == 409, refused.text[:500]
    assert "A backup is already running" in the_message(refused)
    assert uploads_left(web_server) == []
    while client.get(job, headers={"Accept": "application/json"}).json()["state"] == "running":
        time.sleep(0.2)
    # Its turn come, the same upload is checked (as a job) and its plan shown.
    with good.open("rb") as fh:
        review = client.post("/restore/upload", data={"csrf_token": csrf},
                             files={"backup": (good.name, fh, "application/octet-stream")},
                             follow_redirects=True)
    assert review.status_code == 200 and "Review restore" in review.text


def test_a_form_with_thousands_of_fields_is_refused(
        web_server: WebServer, signed_in: tuple[httpx.Client, str], tmp_path: Path) -> None:
    client, csrf = signed_in
    good = create_backup(client, csrf, tmp_path)
    fields = {"csrf_token": csrf, **{f"f{i}": "x" for i in range(60_000)}}
    with good.open("rb") as fh:
        r = client.post("/restore/upload", data=fields,
                        files={"backup": (good.name, fh, "application/octet-stream")})
    assert r.status_code == 400, r.text[:300]
    assert "more than 20 fields" in the_message(r)
    assert uploads_left(web_server) == []
    body = "".join(part(f"f{i}", "x") for i in range(60_000)) + f"--{BOUNDARY}--\r\n"
    r = client.post("/backups", content=body.encode(),
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert r.status_code == 400 and "Traceback" not in r.text
    assert "Traceback" not in web_server.log.read_text()
