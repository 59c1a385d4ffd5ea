"""Conventions users bring, through the real `mmops` CLI and real PostgreSQL: `-o NAME` writes
a file named NAME (like pg_dump -f), an existing directory stays a directory; `--from-database
A` restores the newest backup of A into another database, refused over live data without
--force."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ops.errors import RestoreRefused, UsageError
from tests.cli.test_restore_workflow import SMALL, _error
from tests.cli_helpers import mmops

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(SMALL, url.database)
    return url


@pytest.mark.parametrize("name", ["nightly.dump", "sub/dir/nightly", "plain.sql.bak"])
def test_an_explicit_output_name_is_the_file_written(app, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    res = mmops("backup", "-o", str(target), url=app)
    assert res.returncode == 0, res.stderr
    assert target.is_file() and Path(res.stdout.strip()) == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    verified = mmops("verify", str(target))
    assert verified.returncode == 0, verified.stderr
    shown = mmops("inspect", str(target), "--json")
    assert json.loads(shown.stdout)["database"] == app.database


def test_an_existing_directory_stays_a_directory(app, tmp_path: Path) -> None:
    out = tmp_path / "nightly.dump"
    out.mkdir()
    res = mmops("backup", "-o", str(out), url=app)
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    assert path.parent == out and path.name.startswith(app.database + "-")


def test_from_database_restores_the_newest_backup_of_another_database(app, pg15, make_db,
                                                                      tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    older = mmops("backup", "-o", f"{backups}/", url=app)
    assert older.returncode == 0, older.stderr
    pg15.psql("INSERT INTO users VALUES (100, 'newest')", app.database)
    newest = mmops("backup", "-o", f"{backups}/", url=app)
    assert newest.returncode == 0, newest.stderr
    staging = make_db(pg15)

    # `latest` alone is the newest backup of the target itself: staging has none.
    plain = mmops("restore", "latest", "--backup-dir", str(backups), "--yes", url=staging)
    assert "holds no verified backup of database" in _error(plain, UsageError.exit_code)

    res = mmops("restore", "--from-database", app.database, "--backup-dir", str(backups),
                "--yes", "--json", url=staging)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["plan"]["backup_file"] == newest.stdout.strip()
    assert "newest" in pg15.psql("SELECT name FROM users WHERE id = 100", staging.database)

    # staging now holds data: another database's backup over it needs --force (not just --yes)
    again = mmops("restore", "--from-database", app.database, "--backup-dir", str(backups),
                  "--yes", url=staging)
    assert app.database in _error(again, RestoreRefused.exit_code)
    forced = mmops("restore", "latest", "--from-database", app.database, "--backup-dir",
                   str(backups), "--yes", "--force", url=staging)
    assert forced.returncode == 0, forced.stderr


def test_from_database_with_a_named_file_is_a_usage_error(app, tmp_path: Path) -> None:
    res = mmops("restore", "some.mmops", "--from-database", "other", url=app)
    assert "--from-database other restores that database's newest backup" in _error(
        res, UsageError.exit_code)
    res = mmops("restore", url=app)
    assert "Which backup?" in _error(res, UsageError.exit_code)
