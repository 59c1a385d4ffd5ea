"""`mmops check` through the real CLI against a real directory and a real S3 server
(SeaweedFS): fresh, stale, empty and unreachable repositories, each with its exit code."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from tests.cli_helpers import mmops


def _name(db: str, hours_ago: float, suffix: str = ".mmops") -> str:
    """A backup name stamped ``hours_ago`` before now (now at the call: a module-level clock
    would age every name by however long the suite ran before this module's tests)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return f"{db}-{now - dt.timedelta(hours=hours_ago):%Y%m%dT%H%M%SZ}{suffix}"


def _sidecar(name: str, size: int) -> bytes:
    """The clear-text sidecar the publish step stores beside a backup: what makes a file named
    like a backup count as one (a bare file with the name does not)."""
    from ops.repository import parse_backup_name

    info = parse_backup_name(name)
    assert info is not None
    return json.dumps({"database": info.database, "size": size, "encrypted": info.encrypted,
                       "created_at": info.created_at.isoformat()}).encode()


def _put(directory: Path, name: str, body: bytes = b"x") -> None:
    (directory / name).write_bytes(body)
    (directory / f"{name}.meta.json").write_bytes(_sidecar(name, len(body)))


def _s3_put(client, bucket: str, key: str, body: bytes = b"x") -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body)
    client.put_object(Bucket=bucket, Key=f"{key}.meta.json",
                      Body=_sidecar(key.rsplit("/", 1)[-1], len(body)))


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "REPO", "MMOPS_REPO", "STORAGE_EMULATOR_HOST"))}
    env.update(extra)
    return env


def check(*args: str, env: dict[str, str] | None = None):
    res = mmops("check", *args, env=env or _clean_env())
    assert res.stderr == ""
    return res


def test_a_directory_with_a_fresh_backup_is_ok(tmp_path: Path) -> None:
    newest = _name("app", 2)
    for name in (newest, _name("app", 30, ".mmops.age"), "safety-" + _name("app", 0.1)):
        _put(tmp_path, name)
    (tmp_path / "notes.txt").write_bytes(b"x")
    res = check("--repo", str(tmp_path), "--max-age", "26h")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"BACKUP OK - app: newest {newest}")
    assert "2 backup(s)" in lines[0] and "| age=72" in lines[0]  # safety backups do not count


def test_a_directory_with_only_a_stale_backup_is_critical(tmp_path: Path) -> None:
    _put(tmp_path, _name("app", 30))
    assert check("--repo", str(tmp_path), "--max-age", "26h").returncode == 2
    assert check("--repo", str(tmp_path), "--max-age", "2d").returncode == 0
    res = check("--repo", str(tmp_path), "--max-age", "2d", "--warn-age", "1d")
    assert res.returncode == 1 and res.stdout.startswith("BACKUP WARNING - ")


def test_an_empty_directory_is_critical_and_a_missing_one_unknown(tmp_path: Path) -> None:
    res = check("--repo", str(tmp_path))
    assert res.returncode == 2 and res.stdout.startswith("BACKUP CRITICAL - no backup")
    res = check("--repo", str(tmp_path / "not-mounted"))
    assert res.returncode == 3 and res.stdout.startswith("BACKUP UNKNOWN - ")


def test_the_database_option_and_json(tmp_path: Path) -> None:
    _put(tmp_path, _name("app", 1))
    _put(tmp_path, _name("other-db", 50))
    assert check("--repo", str(tmp_path)).returncode == 2  # other-db is stale
    res = check("--repo", str(tmp_path), "--database", "app", "--json")
    assert res.returncode == 0
    data = json.loads(res.stdout)
    assert data["status_name"] == "OK" and [d["database"] for d in data["databases"]] == ["app"]
    assert check("--repo", str(tmp_path), "--database", "missing").returncode == 2


def test_a_bad_threshold_is_unknown(tmp_path: Path) -> None:
    res = check("--repo", str(tmp_path), "--max-age", "soon")
    assert res.returncode == 3 and "--max-age: 'soon' is not a duration" in res.stdout


@pytest.mark.storage
def test_s3_fresh_stale_empty_and_unreachable(seaweed, s3_bucket) -> None:
    env = _clean_env(**seaweed.environ())
    repo = f"s3://{s3_bucket}/check"
    res = check("--repo", repo, env=env)
    assert res.returncode == 2 and "no backup" in res.stdout  # empty
    client = seaweed.client()
    _s3_put(client, s3_bucket, f"check/{_name('app', 40)}")
    assert check("--repo", repo, env=env).returncode == 2  # stale
    _s3_put(client, s3_bucket, f"check/{_name('app', 1, '.mmops.age')}")
    res = check("--repo", repo, env=env)
    assert res.returncode == 0 and "2 backup(s)" in res.stdout  # fresh
    bad = dict(env, AWS_SECRET_ACCESS_KEY="wrong-secret")
    res = check("--repo", repo, env=bad)
    assert res.returncode == 3 and res.stdout.startswith("BACKUP UNKNOWN - cannot list")
    assert "wrong-secret" not in res.stdout
    down = dict(env, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ENDPOINT_URL_S3="")
    res = check("--repo", repo, env=down)
    assert res.returncode == 3 and "Cannot reach" in res.stdout
