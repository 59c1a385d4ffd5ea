"""The one restore workflow through the real `mmops` CLI (direct mode), real PostgreSQL: the
rules that had drifted apart between modes, each proven where a user meets it."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from ops.errors import RestoreRefused, UsageError
from tests.cli_helpers import mmops

pytestmark = pytest.mark.postgres

SMALL = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, user_id int REFERENCES users, body text);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 5) g;
INSERT INTO notes SELECT g, 1 + g % 5, 'n' || g FROM generate_series(1, 20) g;
"""


def _error(res, code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Aborted" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture
def app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(SMALL, url.database)
    return url


def _backup(url, out: Path) -> Path:
    res = mmops("backup", "-o", str(out) + "/", "--json", url=url)
    assert res.returncode == 0, res.stderr
    return Path(json.loads(res.stdout)["path"])


def _count(pg15, url, table: str) -> int:
    return int(pg15.psql(f"SELECT count(*) FROM {table}", url.database).strip())


def test_tables_with_mode_create_is_a_usage_error_before_anything(app, pg15, tmp_path):
    archive = _backup(app, tmp_path)
    line = _error(mmops("restore", str(archive), "--tables", "notes", "--mode", "create",
                        "--yes", url=app), UsageError.exit_code)
    assert "not --mode create" in line
    assert not (tmp_path / "safety").exists()  # refused before a safety backup


def test_latest_is_the_newest_backup_of_the_target_database_not_of_another(
    app, pg15, make_db, tmp_path
):
    backups = tmp_path / "backups"
    mine = _backup(app, backups)
    other = make_db(pg15)
    pg15.psql("CREATE TABLE other_only (x int); INSERT INTO other_only VALUES (1);",
              other.database)
    theirs = _backup(other, backups)  # newer, and of another database
    theirs.touch()  # and newest by mtime, which `latest` must not go by
    pg15.psql("DELETE FROM notes", app.database)
    res = mmops("restore", "latest", "--backup-dir", str(backups), "--yes", url=app)
    assert res.returncode == 0, res.stderr
    assert f"backup     {mine}" in res.stdout
    assert _count(pg15, app, "notes") == 20
    assert "other_only" not in pg15.psql("SELECT tablename FROM pg_tables", app.database)


def test_another_databases_backup_over_live_data_needs_force_even_with_yes(
    app, pg15, make_db, tmp_path
):
    other = make_db(pg15)
    pg15.psql("CREATE TABLE other_only (x int); INSERT INTO other_only VALUES (1);",
              other.database)
    theirs = _backup(other, tmp_path)
    line = _error(mmops("restore", str(theirs), "--yes", url=app), RestoreRefused.exit_code)
    assert f"The backup is of database {other.database!r}, not {app.database!r}" in line
    assert _count(pg15, app, "notes") == 20  # nothing changed
    res = mmops("restore", str(theirs), "--yes", "--force", url=app)
    assert res.returncode == 0, res.stderr
    assert "overridden (--force)" in res.stdout
    assert _count(pg15, app, "other_only") == 1


def test_replace_preview_counts_every_row_that_goes(app, pg15, tmp_path):
    archive = _backup(app, tmp_path)
    pg15.psql("CREATE TABLE extra (x int); INSERT INTO extra SELECT generate_series(1, 340);",
              app.database)
    res = mmops("restore", str(archive), url=app)  # no terminal: shows the plan, then refuses
    _error(res, RestoreRefused.exit_code)
    assert "will disappear: public.extra (340 rows)" in res.stdout
    assert "loses      365 live rows in all" in res.stdout  # 5 + 20 replaced, 340 dropped


def test_safety_backups_are_kept_per_database_by_their_own_time(app, pg15, tmp_path):
    backups = tmp_path / "backups"
    archive = _backup(app, backups)
    safety = backups / "safety"
    safety.mkdir(mode=0o700)
    # Another database's (older-named) safety backup shares the directory.
    shutil.copy(archive, safety / "safety-aaa_other-20200101T000000Z.mmops")
    for _ in range(3):
        res = mmops("restore", str(archive), "--yes", "--keep-safety", "2", "--backup-dir",
                    str(backups), url=app)
        assert res.returncode == 0, res.stderr
        assert "safety backup  " + str(safety) in res.stdout
    mine = sorted(p.name for p in safety.glob(f"safety-{app.database}-*.mmops"))
    assert len(mine) == 2
    assert (safety / "safety-aaa_other-20200101T000000Z.mmops").exists()
    assert stat.S_IMODE(safety.stat().st_mode) == 0o700


def test_an_empty_database_needs_no_confirmation_and_no_safety_backup(app, pg15, make_db,
                                                                      tmp_path):
    archive = _backup(app, tmp_path)
    empty = make_db(pg15)
    res = mmops("restore", str(archive), "--backup-dir", str(tmp_path), url=empty)
    assert res.returncode == 0, res.stderr  # mode auto → create: nothing to lose, no prompt
    assert "(mode create)" in res.stdout
    assert "none (the database had no tables)" in res.stdout
    assert _count(pg15, empty, "notes") == 20


# A per-table restore refused by the plan, before anything moves, when a live table references
# the selection through a foreign key; --with-dependents brings those tables along.

# comments -> notes -> users (transitive), tags -> users; audit references nothing
FK_SCHEMA = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, user_id int REFERENCES users, body text);
CREATE TABLE comments (id int PRIMARY KEY, note_id int REFERENCES notes, body text);
CREATE TABLE tags (id int PRIMARY KEY, user_id int REFERENCES users);
CREATE TABLE audit (id int PRIMARY KEY);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 5) g;
INSERT INTO notes SELECT g, 1 + g % 5, 'n' || g FROM generate_series(1, 20) g;
INSERT INTO comments SELECT g, 1 + g % 20, 'c' || g FROM generate_series(1, 30) g;
INSERT INTO tags SELECT g, 1 + g % 5 FROM generate_series(1, 7) g;
INSERT INTO audit SELECT generate_series(1, 3);
"""


@pytest.fixture
def fk_app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(FK_SCHEMA, url.database)
    return url


def test_tables_referenced_by_unselected_tables_are_refused_by_the_plan_naming_them_all(
    fk_app, pg15, tmp_path
):
    archive = _backup(fk_app, tmp_path)
    backups = tmp_path / "backups"
    # No terminal and no --yes: before this fix the plan was shown and the refusal was about
    # the missing confirmation; the engine only refused after the safety backup.
    res = mmops("restore", str(archive), "--tables", "users", "--backup-dir", str(backups),
                url=fk_app)
    line = _error(res, RestoreRefused.exit_code)
    assert "Tables public.comments, public.notes, public.tags reference" in line
    assert "--with-dependents (make: WITH_DEPENDENTS=1)" in line
    assert "Restore onto" not in res.stdout  # refused before a plan to confirm
    line = _error(mmops("restore", str(archive), "--tables", "users", "--yes", "--force",
                        "--backup-dir", str(backups), url=fk_app), RestoreRefused.exit_code)
    assert "public.comments" in line  # --force cannot override it: the engine would refuse
    assert not (backups / "safety").exists()  # refused before the safety backup


def test_with_dependents_restores_the_referencing_tables_transitively_and_shows_them(
    fk_app, pg15, tmp_path
):
    archive = _backup(fk_app, tmp_path)
    pg15.psql("DELETE FROM comments; DELETE FROM tags; DELETE FROM notes; DELETE FROM users;"
              "DELETE FROM audit WHERE id = 1;", fk_app.database)
    res = mmops("restore", str(archive), "--tables", "users", "--with-dependents", "--yes",
                "--backup-dir", str(tmp_path / "backups"), url=fk_app)
    assert res.returncode == 0, res.stderr
    assert "dependents public.comments, public.notes, public.tags" in res.stdout
    for table in ("public.users", "public.notes", "public.comments", "public.tags"):
        assert f"    {table}" in res.stdout  # each listed in the plan with its rows
    assert "    public.audit" not in res.stdout
    counts = [_count(pg15, fk_app, t) for t in ("users", "notes", "comments", "tags", "audit")]
    assert counts == [5, 20, 30, 7, 2]  # audit is not selected and keeps its rows


def test_with_dependents_as_the_environment_variable_make_sets(fk_app, pg15, tmp_path):
    archive = _backup(fk_app, tmp_path)
    res = mmops("restore", str(archive), "--tables", "notes", "--yes", "--json",
                "--backup-dir", str(tmp_path / "backups"), url=fk_app,
                env={"WITH_DEPENDENTS": "1"})
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)["plan"]
    assert plan["dependents"] == ["public.comments"]
    assert sorted(t["table"] for t in plan["tables"]) == ["public.comments", "public.notes"]
