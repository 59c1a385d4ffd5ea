"""Encrypted backups do not look corrupt: `mmops inspect X.mmops.age` shows what its sidecar
knows without the identity; `inspect` and `verify` with `--identity KEY` decrypt it (into a
private temp dir, removed afterwards). Real CLI, real PostgreSQL, real age encryption."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ops.errors import UsageError
from tests.cli.test_restore_workflow import SMALL, _error
from tests.cli_helpers import mmops

pytestmark = pytest.mark.postgres


@pytest.fixture
def encrypted(pg15, make_db, tmp_path: Path) -> tuple[Path, Path, str]:
    """(the .mmops.age in a local repository, the identity file, the database name)"""
    app = make_db(pg15)
    pg15.psql(SMALL, app.database)
    key = tmp_path / "key.txt"
    recipient = mmops("key", "generate", "-o", str(key)).stdout.strip()
    repo = tmp_path / "repo"
    res = mmops("backup", "-o", f"{tmp_path / 'staging'}/", "--repo", str(repo),
                "--encrypt-to", recipient, url=app)
    assert res.returncode == 0, res.stderr
    [stored] = repo.glob("*.mmops.age")
    return stored, key, app.database


def test_inspect_without_identity_shows_the_sidecar(encrypted) -> None:
    stored, _key, database = encrypted
    res = mmops("inspect", str(stored))
    assert res.returncode == 0, res.stderr
    assert "age-encrypted: from its sidecar" in res.stdout
    assert f"database:  {database}" in res.stdout and "tables:    2, 25 rows" in res.stdout
    as_json = json.loads(mmops("inspect", str(stored), "--json").stdout)
    assert as_json["sidecar"]["database"] == database and as_json["encrypted"] is True


def test_inspect_and_verify_with_the_identity_decrypt(encrypted, tmp_path: Path) -> None:
    stored, key, database = encrypted
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    res = mmops("inspect", str(stored), "--identity", str(key), "--json", env=env)
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    assert manifest["database"] == database
    assert sorted(t["name"] for t in manifest["tables"]) == ["notes", "users"]
    res = mmops("verify", str(stored), env={**env, "AGE_IDENTITY": str(key)})
    assert res.returncode == 0, res.stderr
    assert "every checksum matches" in res.stdout
    assert os.listdir(scratch) == []  # the decrypted copy is gone


def test_verify_without_identity_says_so_not_corrupt(encrypted) -> None:
    stored, _key, _db = encrypted
    res = mmops("verify", str(stored))
    assert "is age-encrypted: pass the identity" in _error(res, UsageError.exit_code)


def test_encrypted_file_without_a_sidecar_asks_for_the_identity(encrypted, tmp_path: Path
                                                                ) -> None:
    stored, _key, _db = encrypted
    alone = tmp_path / stored.name
    alone.write_bytes(stored.read_bytes())
    res = mmops("inspect", str(alone))
    assert "has no sidecar" in _error(res, UsageError.exit_code)
