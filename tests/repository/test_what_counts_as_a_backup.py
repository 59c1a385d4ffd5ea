"""Invariant 9 against whatever lies in a repository: only backups whose sidecar/manifest is
readable, consistent and matches the object count — for `repo prune`, `latest`, `mmops check`
and the listings — and one prefix is one repository (nested and sibling prefixes are another's).
Through the real `mmops` CLI against a real PostgreSQL, a directory, SeaweedFS and fake-gcs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.jobs.test_repository_workflow import run

pytestmark = [pytest.mark.postgres]

SMALL = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g;
"""
FUTURE = "20991231T235959Z"


@pytest.fixture
def app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(SMALL, url.database)
    return url


def _backups(repo: str, env: dict[str, str] | None = None) -> list[dict]:
    res = run("repo", "--repo", repo, "list", "--json", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["backups"]


def _two_backups(app, repo: str, out: Path, env: dict[str, str] | None = None) -> list[str]:
    names = []
    for _ in range(2):
        res = run("backup", "-o", str(out), "--repo", repo, url=app, env=env)
        assert res.returncode == 0, res.stderr
        names.append(res.stdout.strip().rsplit("/", 1)[-1])
    assert names[0] != names[1]
    return names


def test_junk_truncated_and_foreign_files_named_as_the_newest_backup_are_never_counted(
    app, pg15, make_db, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    db = app.database
    first, second = _two_backups(app, str(repo), repo)
    # a foreign file: another database's real backup under this database's future name
    other = make_db(pg15)
    pg15.psql(SMALL, other.database)
    res = run("backup", "-o", str(tmp_path / "other"), url=other)
    assert res.returncode == 0, res.stderr
    shutil.copy(res.stdout.strip(), repo / f"{db}-20991231T235957Z.mmops")
    # a truncated copy of a real one, and plain junk, both dated in the future
    data = (repo / second).read_bytes()
    (repo / f"{db}-20991231T235958Z.mmops").write_bytes(data[: len(data) // 2])
    (repo / f"{db}-{FUTURE}.mmops").write_bytes(b"not a backup at all")

    listed = {b["name"]: b for b in _backups(str(repo))}
    assert [n for n, b in listed.items() if b["verified"]] == [first, second]
    assert {n for n, b in listed.items() if not b["verified"]} == {
        f"{db}-20991231T235957Z.mmops", f"{db}-20991231T235958Z.mmops", f"{db}-{FUTURE}.mmops"}
    assert "not" in listed[f"{db}-20991231T235957Z.mmops"]["problem"]

    # check: the newest *verified* backup is fresh (no "dated in the future" from junk)
    res = run("check", "--repo", str(repo), "--database", db, "--max-age", "1h")
    assert res.returncode == 0, res.stdout + res.stderr
    assert second in res.stdout and "3 file(s) that are not verified backups" in res.stdout

    # prune keeps the newest verified backup and never deletes what it does not count
    res = run("repo", "--repo", str(repo), "prune", "--database", db, "--keep-last", "1",
              "--dry-run")
    assert res.returncode == 0, res.stderr
    plan = res.stdout.splitlines()
    assert plan[0].startswith(f"keep   {second}") and plan[1].startswith(f"delete {first}")
    assert [line.split()[0] for line in plan[2:]] == ["ignore"] * 3
    res = run("repo", "--repo", str(repo), "prune", "--database", db, "--keep-last", "1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["deleted", first]
    assert res.stderr.count("is not a verified backup") == 3
    assert sorted(p.name for p in repo.glob("*.mmops")) == sorted(
        [second, f"{db}-20991231T235957Z.mmops", f"{db}-20991231T235958Z.mmops",
         f"{db}-{FUTURE}.mmops"])

    # BACKUP=latest is the newest verified backup, not the future-dated junk
    pg15.psql("INSERT INTO users VALUES (999, 'after the backup');", db)
    res = run("restore", "latest", "--backup-dir", str(repo), "--yes", url=app)
    assert res.returncode == 0, res.stderr
    rows = pg15.psql("SELECT count(*) FROM users;", db)
    assert rows.strip() == "50"


def _forge(client, bucket: str, key: str, database: str, stamp: str, body: bytes) -> None:
    """An object and a consistent sidecar, as the publish step writes them."""
    client.put_object(Bucket=bucket, Key=key, Body=body)
    created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    meta = {"database": database, "created_at": created, "size": len(body),
            "encrypted": False, "kind": "full"}
    client.put_object(Bucket=bucket, Key=key + ".meta.json", Body=json.dumps(meta).encode())


@pytest.mark.storage
def test_s3_prune_keeps_the_newest_verified_backup_and_never_leaves_its_prefix(
    app, seaweed, s3_bucket: str, tmp_path: Path
) -> None:
    env = seaweed.environ()
    client = seaweed.client()
    db = app.database
    repo = f"s3://{s3_bucket}/mm"
    first, second = _two_backups(app, repo, tmp_path / "out", env)
    # junk without a sidecar, and junk whose sidecar does not match it, both "newest"
    client.put_object(Bucket=s3_bucket, Key=f"mm/{db}-{FUTURE}.mmops", Body=b"junk")
    client.put_object(Bucket=s3_bucket, Key=f"mm/{db}-20991231T235958Z.mmops", Body=b"junk")
    client.put_object(Bucket=s3_bucket, Key=f"mm/{db}-20991231T235958Z.mmops.meta.json",
                      Body=json.dumps({"database": db, "created_at": "2099-12-31T23:59:58Z",
                                       "size": 1 << 20, "encrypted": False}).encode())
    # other repositories: nested below mm/ and a sibling prefix sharing its string
    for key in (f"mm/old/{db}-20200101T000000Z.mmops", f"mm-old/{db}-20200101T000000Z.mmops"):
        _forge(client, s3_bucket, key, db, "20200101T000000Z", b"another repository's")

    listed = _backups(repo, env)
    assert [b["name"] for b in listed if b["verified"]] == [first, second]
    assert sorted(b["name"] for b in listed if not b["verified"]) == [
        f"{db}-20991231T235958Z.mmops", f"{db}-{FUTURE}.mmops"]
    assert not [b for b in listed if "old" in b["name"]]

    res = run("repo", "--repo", repo, "prune", "--database", db, "--keep-last", "1", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["deleted", first]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert f"mm/{second}" in keys and f"mm/{first}" not in keys
    assert {f"mm/{db}-{FUTURE}.mmops", f"mm/{db}-20991231T235958Z.mmops",
            f"mm/old/{db}-20200101T000000Z.mmops", f"mm-old/{db}-20200101T000000Z.mmops",
            f"mm/old/{db}-20200101T000000Z.mmops.meta.json"} <= keys

    res = run("check", "--repo", repo, "--database", db, "--max-age", "1h", env=env)
    assert res.returncode == 0 and second in res.stdout, res.stdout + res.stderr


@pytest.mark.storage
def test_gcs_repository_lists_and_prunes_only_its_own_prefix(
    fake_gcs, gcs_bucket: str, tmp_path: Path
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    env = fake_gcs.environ()
    gcs = storage.Client(project="mmops-test", credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": fake_gcs.endpoint})
    bucket = gcs.bucket(gcs_bucket)

    class Put:
        def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803
            bucket.blob(Key).upload_from_string(Body)

    for key, stamp in (("mm/db-20260101T000000Z.mmops", "20260101T000000Z"),
                       ("mm/db-20260102T000000Z.mmops", "20260102T000000Z"),
                       ("mm/old/db-20270101T000000Z.mmops", "20270101T000000Z"),
                       ("mm-old/db-20270101T000000Z.mmops", "20270101T000000Z")):
        _forge(Put(), gcs_bucket, key, "db", stamp, b"x")
    repo = f"gs://{gcs_bucket}/mm"
    assert [b["name"] for b in _backups(repo, env)] == [
        "db-20260101T000000Z.mmops", "db-20260102T000000Z.mmops"]
    res = run("repo", "--repo", repo, "prune", "--database", "db", "--keep-last", "1", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["deleted", "db-20260101T000000Z.mmops"]
    names = {b.name for b in gcs.list_blobs(gcs_bucket)}
    assert {"mm/db-20260102T000000Z.mmops", "mm/old/db-20270101T000000Z.mmops",
            "mm-old/db-20270101T000000Z.mmops"} <= names
