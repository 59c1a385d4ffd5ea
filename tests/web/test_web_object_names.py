"""Whatever names a repository holds, the page renders (no 500) and each listed backup's
Download link fetches exactly that object: names with ``?``, ``#``, ``%`` and spaces, in a
local directory and on a real S3 server (SeaweedFS), and a nested object under the prefix."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.dburl import DbUrl
from tests.web.conftest import PASSWORD, WebServer, csrf_of, start_web, stop_web

pytestmark = pytest.mark.postgres

STAMP = "-20260101T000000Z.mmops"
ODD = ("q?x=1", "h#frag", "pct%41%zz", "sp ace&amp")


def download_links(page: str) -> dict[str, str]:
    """Each Download link's accessible target: the backup name it is titled with → href."""
    links = {}
    for m in re.finditer(r'<a class="button quiet" href="([^"]+)"[^>]*title="Download ([^"]+)"',
                         page):
        links[html.unescape(m.group(2))] = html.unescape(m.group(1))
    return links


def check_links(c: httpx.Client, names: dict[str, bytes]) -> None:
    page = c.get("/")
    assert page.status_code == 200, page.text[:500]
    links = download_links(page.text)
    for name, content in names.items():
        assert name in links, (name, sorted(links))
        r = c.get(links[name])
        assert r.status_code == 200, (name, links[name], r.text[:300])
        assert r.content == content, name


@contextlib.contextmanager
def served(app_db: DbUrl, password_hash: str, tmp_path: Path, *args: str
           ) -> Iterator[tuple[WebServer, httpx.Client, str]]:
    """The real `mmops web ARGS`, a signed-in client and the first backup's name."""
    server = start_web(app_db, password_hash, tmp_path, *args)
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as c:
            page = c.get("/signin")
            r = c.post("/signin", data={"password": PASSWORD, "csrf_token": csrf_of(page.text)},
                       follow_redirects=True)
            assert r.status_code == 200, r.text
            yield server, c, csrf_of(r.text)
        assert "Traceback" not in server.log.read_text()
    finally:
        stop_web(server)


def first_backup(c: httpx.Client, csrf: str) -> tuple[str, bytes]:
    r = c.post("/backups", data={"csrf_token": csrf})
    assert r.status_code == 200, r.text
    return re.search(r'filename="([^"]+)"', r.headers["content-disposition"]).group(1), r.content


def test_odd_names_in_a_directory_are_listed_and_their_links_download_them(
        app_db: DbUrl, password_hash: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with served(app_db, password_hash, tmp_path, "--repo", str(repo)) as (_server, c, csrf):
        name, content = first_backup(c, csrf)
        names = {name: content}
        for odd in ODD:
            odd_name = f"{app_db.database}{odd}{STAMP}"
            (repo / odd_name).write_bytes(content)
            names[odd_name] = content
        (repo / "old").mkdir()
        (repo / "old" / name).write_bytes(b"another repository's backup")
        check_links(c, names)


@pytest.mark.storage
def test_odd_and_nested_names_on_s3_never_break_the_page(
        app_db: DbUrl, password_hash: str, tmp_path: Path, seaweed, s3_bucket: str) -> None:
    storage = tmp_path / "storage.env"
    storage.touch(mode=0o600)
    storage.write_text("".join(f"{k}={v}\n" for k, v in seaweed.environ().items()))
    s3 = seaweed.client()
    with served(app_db, password_hash, tmp_path, "--repo", f"s3://{s3_bucket}/db",
                "--repo-env-file", str(storage)) as (_server, c, csrf):
        name, content = first_backup(c, csrf)
        names = {name: content}
        for odd in ODD:
            odd_name = f"{app_db.database}{odd}{STAMP}"
            s3.put_object(Bucket=s3_bucket, Key=f"db/{odd_name}", Body=content)
            names[odd_name] = content
        # A nested object (another repository's, under this prefix): the page still renders.
        s3.put_object(Bucket=s3_bucket, Key=f"db/old/{name}", Body=b"not this repository's")
        check_links(c, names)
        nested = c.get("/backups/backups/old%2F" + name)
        assert nested.status_code == 404 and "Traceback" not in nested.text
