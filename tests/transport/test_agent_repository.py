"""Agent mode with a repository: the server uploads the (age-encrypted) backup to S3 itself —
storage settings arrive on the agent's stdin, the server holds only the public recipient — and
`make db-restore-ops BACKUP=latest` restores it from there (decrypted here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.remote_sandbox import MMOPS, Remote

pytestmark = pytest.mark.storage


def _keys(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "key.txt"
    res = subprocess.run([MMOPS, "key", "generate", "-o", str(key)], capture_output=True,
                         text=True, check=True)
    return key, res.stdout.strip()


def test_the_server_uploads_an_encrypted_backup_and_restore_latest_comes_from_the_repo(
    provisioned: Remote, seaweed, s3_bucket: str, tmp_path: Path
) -> None:
    remote = provisioned
    key, recipient = _keys(tmp_path)
    backup_dir = tmp_path / "backups"
    repo = f"s3://{s3_bucket}/app"
    storage = seaweed.environ()
    res = remote.make("db-backup-ops", BACKUP_DIR=str(backup_dir), REPO=repo,
                      ENCRYPT_TO=recipient, **storage)
    assert res.returncode == 0, res.stdout + res.stderr
    assert storage["AWS_SECRET_ACCESS_KEY"] not in res.stdout + res.stderr
    assert not backup_dir.exists() or not list(backup_dir.iterdir())  # nothing pulled here
    listed = subprocess.run([MMOPS, "repo", "--repo", repo, "list", "--json"],
                            env=remote.cmd_env(**storage), capture_output=True, text=True)
    backups = json.loads(listed.stdout)["backups"]
    assert len(backups) == 1 and backups[0]["encrypted"]
    assert remote.leftover_tmp() == []  # the server's staging copy is gone
    # the server never saw a private key (its data dirs; the venv holds only our code)
    data = [p for p in remote.ops_dir.rglob("*")
            if p.is_file() and "venv" not in p.relative_to(remote.ops_dir).parts]
    assert not any(b"AGE-SECRET-KEY-1" in p.read_bytes() for p in data)

    res = remote.make("db-restore-ops", BACKUP="latest", YES="1", REPO=repo,
                      AGE_IDENTITY=str(key), BACKUP_DIR=str(backup_dir), **storage)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "row counts checked" in res.stdout


def test_keep_local_also_pulls_the_plain_file(
    provisioned: Remote, seaweed, s3_bucket: str, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "backups"
    res = provisioned.make("db-backup-ops", BACKUP_DIR=str(backup_dir),
                           REPO=f"s3://{s3_bucket}", KEEP_LOCAL="1", **seaweed.environ())
    assert res.returncode == 0, res.stdout + res.stderr
    pulled = list(backup_dir.glob("*.mmops"))
    assert len(pulled) == 1 and (pulled[0].stat().st_mode & 0o777) == 0o600
    assert seaweed.client().head_object(Bucket=s3_bucket, Key=pulled[0].name)["ContentLength"] \
        == pulled[0].stat().st_size
