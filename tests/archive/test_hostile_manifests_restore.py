"""`mmops restore` of a real backup whose manifest was made hostile (valid crc): refused with
one sentence and exit 6 before anything changes — where it used to die of a TypeError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.archive.hostile import edit_manifest
from tests.archive.test_hostile_manifests import HOSTILE
from tests.cli_helpers import mmops
from tests.fidelity import data_digest

pytestmark = pytest.mark.postgres

CASES = ["nested 200,000 deep", "tables is a string", "a row count is a string",
         "a table name is 10,000 characters", "tables is missing"]


@pytest.fixture
def backup_and_target(pg15, make_db, tmp_path: Path) -> tuple[Path, object]:
    source = make_db(pg15)
    pg15.psql("CREATE TABLE notes (id int PRIMARY KEY, body text);"
              "INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 50) g;",
              database=source.database)
    res = mmops("backup", "-o", str(tmp_path) + "/", "--json", url=source)
    assert res.returncode == 0, res.stderr
    target = make_db(pg15)
    pg15.psql("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1), (2);",
              database=target.database)
    return Path(json.loads(res.stdout)["path"]), target


@pytest.mark.parametrize("case", CASES)
def test_restore_refuses_a_hostile_manifest_and_changes_nothing(
        backup_and_target: tuple[Path, object], case: str) -> None:
    path, target = backup_and_target
    edit_manifest(path, HOSTILE[case])
    before = data_digest(target)

    for args in (["restore", str(path), "--yes", "--force"], ["restore", str(path)]):
        res = mmops(*args, url=target)
        assert res.returncode == 6, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "invalid manifest" in errors[0], res.stderr
    assert data_digest(target) == before
