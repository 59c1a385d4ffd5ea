"""A per-table restore refused by the plan, before anything moves, when a live table references
the selection through a foreign key; ``--with-dependents`` brings those tables along (real
`mmops` CLI, real PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.errors import RestoreRefused
from tests.cli_helpers import mmops

pytestmark = pytest.mark.postgres

# comments -> notes -> users (transitive), tags -> users; audit references nothing
SCHEMA = """
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
def app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(SCHEMA, url.database)
    return url


def _backup(url, out: Path) -> Path:
    res = mmops("backup", "-o", str(out) + "/", "--json", url=url)
    assert res.returncode == 0, res.stderr
    return Path(json.loads(res.stdout)["path"])


def _count(pg15, url, table: str) -> int:
    return int(pg15.psql(f"SELECT count(*) FROM {table}", url.database).strip())


def _error_line(res) -> str:
    assert res.returncode == RestoreRefused.exit_code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_tables_referenced_by_unselected_tables_are_refused_by_the_plan_naming_them_all(
    app, pg15, tmp_path
):
    archive = _backup(app, tmp_path)
    backups = tmp_path / "backups"
    # No terminal and no --yes: before this fix the plan was shown and the refusal was about
    # the missing confirmation; the engine only refused after the safety backup.
    res = mmops("restore", str(archive), "--tables", "users", "--backup-dir", str(backups),
                url=app)
    line = _error_line(res)
    assert "Tables public.comments, public.notes, public.tags reference" in line
    assert "--with-dependents (make: WITH_DEPENDENTS=1)" in line
    assert "Restore onto" not in res.stdout  # refused before a plan to confirm
    line = _error_line(mmops("restore", str(archive), "--tables", "users", "--yes",
                             "--force", "--backup-dir", str(backups), url=app))
    assert "public.comments" in line  # --force cannot override it: the engine would refuse
    assert not (backups / "safety").exists()  # refused before the safety backup


def test_with_dependents_restores_the_referencing_tables_transitively_and_shows_them(
    app, pg15, tmp_path
):
    archive = _backup(app, tmp_path)
    pg15.psql("DELETE FROM comments; DELETE FROM tags; DELETE FROM notes; DELETE FROM users;"
              "DELETE FROM audit WHERE id = 1;", app.database)
    res = mmops("restore", str(archive), "--tables", "users", "--with-dependents", "--yes",
                "--backup-dir", str(tmp_path / "backups"), url=app)
    assert res.returncode == 0, res.stderr
    assert "dependents public.comments, public.notes, public.tags" in res.stdout
    for table in ("public.users", "public.notes", "public.comments", "public.tags"):
        assert f"    {table}" in res.stdout  # each listed in the plan with its rows
    assert "    public.audit" not in res.stdout
    assert [_count(pg15, app, t) for t in ("users", "notes", "comments", "tags", "audit")] == [
        5, 20, 30, 7, 2]  # audit is not selected and keeps its rows


def test_with_dependents_as_the_environment_variable_make_sets(app, pg15, tmp_path):
    archive = _backup(app, tmp_path)
    res = mmops("restore", str(archive), "--tables", "notes", "--yes", "--json",
                "--backup-dir", str(tmp_path / "backups"), url=app,
                env={"WITH_DEPENDENTS": "1"})
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)["plan"]
    assert plan["dependents"] == ["public.comments"]
    assert sorted(t["table"] for t in plan["tables"]) == ["public.comments", "public.notes"]
