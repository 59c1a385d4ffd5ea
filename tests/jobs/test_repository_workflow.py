"""backup → verify → publish → prune into S3 (SeaweedFS) and GCS (fake-gcs-server), encrypted
with age, and restore `latest` back from there — through the real `mmops` CLI, direct mode."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ops.archive import verify_archive
from tests.cli_helpers import MMOPS, url_text

pytestmark = [pytest.mark.postgres, pytest.mark.storage]

SMALL = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g;
"""


def run(*args: str, url=None, env: dict[str, str] | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "REPO", "MMOPS_REPO", "ENCRYPT_TO", "AGE_IDENTITY",
                                 "KEEP", "STORAGE_EMULATOR_HOST"))}
    if url is not None:
        full["DATABASE_URL"] = url_text(url)
    full.update(env or {})
    return subprocess.run([str(MMOPS), *args], capture_output=True, text=True, env=full,
                          timeout=300, cwd=cwd)


@pytest.fixture
def app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(SMALL, url.database)
    return url


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "key.txt"
    res = run("key", "generate", "-o", str(key))
    assert res.returncode == 0, res.stderr
    assert (key.stat().st_mode & 0o777) == 0o600
    return key, res.stdout.strip()


def _list(env: dict[str, str], repo: str) -> list[dict]:
    res = run("repo", "--repo", repo, "list", "--json", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["backups"]


def test_encrypted_backup_goes_to_s3_and_restores_latest_from_there(
    app, pg15, seaweed, s3_bucket, age_key, tmp_path: Path
) -> None:
    key, recipient = age_key
    env = seaweed.environ()
    repo = f"s3://{s3_bucket}/prod"
    out = tmp_path / "backups"
    out.mkdir()
    res = run("backup", "--repo", repo, "--encrypt-to", recipient, url=app, env=env, cwd=out)
    assert res.returncode == 0, res.stderr
    assert f"stored {repo}/{app.database}-" in res.stderr and "age-encrypted" in res.stderr
    assert not list(out.iterdir())  # no plain copy left on the laptop (no KEEP_LOCAL, no -o)
    stored = _list(env, repo)
    assert [b["encrypted"] for b in stored] == [True] and stored[0]["database"] == app.database
    assert seaweed.environ()["AWS_SECRET_ACCESS_KEY"] not in res.stdout + res.stderr

    # stock `age -d` gives the plain file back, and it verifies
    obj = seaweed.client().get_object(Bucket=s3_bucket, Key=f"prod/{stored[0]['name']}")
    enc = tmp_path / stored[0]["name"]
    enc.write_bytes(obj["Body"].read())
    plain = tmp_path / "plain.mmops"
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(enc)], check=True)
    verify_archive(plain)

    pg15.psql("DELETE FROM users WHERE id > 10", app.database)
    res = run("restore", "latest", "--repo", repo, "--yes", url=app, env=env)
    assert "is age-encrypted" in res.stderr and res.returncode == 2  # no identity given
    res = run("restore", "latest", "--repo", repo, "--identity", str(key), "--yes",
              "--backup-dir", str(out), url=app, env=env)
    assert res.returncode == 0, res.stderr
    assert pg15.psql("SELECT count(*) FROM users", app.database).strip() == "50"


def test_keep_local_keeps_the_plain_copy_and_gcs_works_the_same(
    app, pg15, fake_gcs, gcs_bucket, tmp_path: Path
) -> None:
    env = fake_gcs.environ()
    repo = f"gs://{gcs_bucket}/db"
    out = tmp_path / "backups"
    res = run("backup", "-o", str(out), "--repo", repo, "--keep-local", url=app, env=env)
    assert res.returncode == 0, res.stderr
    local = list(out.glob("*.mmops"))
    assert len(local) == 1 and (local[0].stat().st_mode & 0o777) == 0o600
    assert [b["name"] for b in _list(env, repo)] == [local[0].name]
    pg15.psql("DELETE FROM users", app.database)
    res = run("restore", "latest", "--repo", repo, "--yes", url=app, env=env)
    assert res.returncode == 0, res.stderr
    assert pg15.psql("SELECT count(*) FROM users", app.database).strip() == "50"


def test_keep_prunes_by_the_backups_own_time_and_never_the_newest(
    app, seaweed, s3_bucket, tmp_path: Path
) -> None:
    env = seaweed.environ()
    repo = f"s3://{s3_bucket}"
    client = seaweed.client()
    # three older daily backups of this database, one of another database
    source = tmp_path / "seed"
    res = run("backup", "-o", f"{source}/", url=app)
    assert res.returncode == 0, res.stderr
    body = next(source.glob("*.mmops")).read_bytes()

    def seed(database: str, day: str) -> None:  # a stored backup with its sidecar
        key = f"{database}-{day}T020000Z.mmops"
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)
        meta = {"database": database, "created_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T02:00:00Z",
                "size": len(body), "encrypted": False}
        client.put_object(Bucket=s3_bucket, Key=f"{key}.meta.json", Body=json.dumps(meta))

    for day in ("20260101", "20260102", "20260103"):
        seed(app.database, day)
    seed("other", "20250101")
    res = run("backup", "-o", str(tmp_path / "b"), "--repo", repo, "--keep", "daily=2",
              url=app, env=env)
    assert res.returncode == 0, res.stderr
    names = sorted(b["name"] for b in _list(env, repo))
    assert len([n for n in names if n.startswith(app.database)]) == 2
    assert f"{app.database}-20260103T020000Z.mmops" in names  # the newest of the older ones
    assert "other-20250101T020000Z.mmops" in names  # another database: never touched
    assert "pruned " in res.stderr


def test_a_repository_url_with_credentials_or_unknown_scheme_is_refused(app, tmp_path):
    res = run("backup", "-o", str(tmp_path), "--repo", "s3://KEY:SECRET@bucket/x", url=app)
    assert res.returncode == 2 and "credentials come from the environment" in res.stderr
    assert "SECRET" not in res.stderr
    res = run("backup", "-o", str(tmp_path), "--repo", "ftp://host/x", url=app)
    assert res.returncode == 2 and "Unknown repository type" in res.stderr
    res = run("backup", "-o", str(tmp_path), "--encrypt-to", "age1notakey", url=app)
    assert res.returncode == 3 and "not a valid age" in res.stderr
    assert list(tmp_path.iterdir()) == []  # refused before any backup was taken


def test_list_shows_kind_revision_and_encryption_without_the_identity_and_urls_work(
    app, pg15, seaweed, s3_bucket, age_key, tmp_path: Path
) -> None:
    _key, recipient = age_key
    env = seaweed.environ()
    repo = f"s3://{s3_bucket}/x"
    assert run("backup", "-o", str(tmp_path / "a"), "--repo", repo, url=app,
               env=env).returncode == 0
    res = run("backup", "-o", str(tmp_path / "b"), "--repo", repo, "--encrypt-to", recipient,
              "-t", "users", url=app, env=env)
    assert res.returncode == 0, res.stderr
    rows = _list(env, repo)
    assert [(r["kind"], r["encrypted"]) for r in rows] == [("full", False), ("tables", True)]
    plain = rows[0]["name"]
    # a full object URL works for inspect, verify (read by offset) and restore
    url = f"{repo}/{plain}"
    res = run("inspect", url, "--json", env=env)
    assert res.returncode == 0 and json.loads(res.stdout)["database"] == app.database
    assert run("verify", url, env=env).returncode == 0
    pg15.psql("DELETE FROM users", app.database)
    res = run("restore", url, "--yes", url=app, env=env)
    assert res.returncode == 0, res.stderr
    assert pg15.psql("SELECT count(*) FROM users", app.database).strip() == "50"
    # prune with restic-style flags, dry run first: nothing goes, reasons are shown
    res = run("repo", "--repo", repo, "prune", "--database", app.database, "--keep-last", "1",
              "--dry-run", env=env)
    assert res.returncode == 0 and "delete" in res.stdout and "newest of its database" in res.stdout
    assert len(_list(env, repo)) == 2
    res = run("repo", "--repo", repo, "prune", "--database", app.database, "--keep-last", "1",
              env=env)
    assert res.returncode == 0, res.stderr
    left = seaweed.client().list_objects_v2(Bucket=s3_bucket, Prefix="x/")["Contents"]
    assert sorted(o["Key"] for o in left) == sorted(
        [f"x/{rows[1]['name']}", f"x/{rows[1]['name']}.meta.json"])  # sidecar pruned too
