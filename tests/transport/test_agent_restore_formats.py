"""`make db-restore-ops` / `mmops remote restore` beyond whole .mmops archives: `--tables`, old
JSON backups and plain SQL dumps, through the agent (real sshd, real PostgreSQL).

The sandbox database is shared with the other remote tests: the module backs it up first and
restores that backup (whole, through the agent) when it is done.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fidelity import data_digest
from tests.remote_sandbox import Remote

ROOT = Path(__file__).resolve().parents[2]
OLD_JSON = ROOT / "tests" / "fixtures" / "legacy" / "production_backup_20240501_120000.json"


def _sql(remote: Remote, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(**remote.url.connect_kwargs())
        try:
            if not args and ";" in sql:  # several statements: no prepared statement, no rows
                await conn.execute(sql)
                return []
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _safety(remote: Remote) -> list[str]:
    d = remote.ops_dir / "safety"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def _table(digest: dict[str, str], name: str) -> str:
    return next(v for k, v in digest.items() if k.startswith("table ") and name in k)


@pytest.fixture(scope="module")
def pristine(provisioned: Remote, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A .mmops backup of the sandbox taken through the agent; restored whole at the end."""
    backup_dir = tmp_path_factory.mktemp("pristine")
    res = provisioned.mmops("backup", "--backup-dir", str(backup_dir))
    assert res.returncode == 0, res.stdout + res.stderr
    archive = next(backup_dir.glob("*.mmops"))
    yield archive
    res = provisioned.mmops("restore", str(archive), "--yes", "--mode", "replace")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.postgres
@pytest.mark.sshd
def test_tables_restores_only_those_tables_and_checks_only_their_rows(
    provisioned: Remote, pristine: Path
) -> None:
    remote = provisioned
    original = data_digest(remote.url)
    _sql(remote, "UPDATE documents SET title = title || ' (edited)'; "
                 "UPDATE users SET display_name = 'changed ' || display_name")
    changed = data_digest(remote.url)
    assert _table(changed, "documents") != _table(original, "documents")

    # documents alone: document_recovery (not selected, holds rows) references it → refused.
    res = remote.make("db-restore-ops", BACKUP=str(pristine), TABLES="documents", YES="1")
    assert res.returncode != 0, res.stdout
    assert "document_recovery" in res.stderr and "reference" in res.stderr
    assert "WITH_DEPENDENTS=1" in res.stderr
    # refused by the plan, before it is shown for confirmation and before the file is uploaded
    # (the engine's own check, after the upload, is only the last line of defence)
    assert "Restore onto" not in res.stdout
    assert "… transfer" not in res.stderr and "uploaded" not in res.stderr
    assert "The safety backup is" not in res.stderr
    assert data_digest(remote.url) == changed

    safety_before = _safety(remote)
    res = remote.make("db-restore-ops", BACKUP=str(pristine),
                      TABLES="documents,document_recovery", YES="1")
    assert res.returncode == 0, res.stdout + res.stderr
    plan_lines = [ln.split()[0] for ln in res.stdout.splitlines() if ln.startswith("    ")]
    assert sorted(plan_lines) == ["public.document_recovery", "public.documents"]
    assert "mode data-only" in res.stdout and "--tables documents,document_recovery" in res.stdout
    assert "row counts checked" in res.stdout and "ok for the 2 tables restored" in res.stdout
    after = data_digest(remote.url)
    assert _table(after, "documents") == _table(original, "documents")
    assert _table(after, "users") == _table(changed, "users")  # not selected: still changed
    assert len(_safety(remote)) == min(len(safety_before) + 1, 5)
    assert remote.leftover_tmp() == []


@pytest.mark.postgres
@pytest.mark.sshd
def test_with_dependents_brings_the_referencing_tables_through_the_agent(
    provisioned: Remote, pristine: Path
) -> None:
    remote = provisioned
    original = data_digest(remote.url)
    _sql(remote, "UPDATE documents SET title = title || ' (edited)'")
    res = remote.make("db-restore-ops", BACKUP=str(pristine), TABLES="documents", YES="1",
                      WITH_DEPENDENTS="1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--with-dependents" in res.stdout  # make echoes the flag it passes
    dependents = next(ln for ln in res.stdout.splitlines() if ln.startswith("  dependents "))
    assert "public.document_recovery" in dependents
    assert _table(data_digest(remote.url), "documents") == _table(original, "documents")


def _pg_dump(remote: Remote, target: Path, *extra: str) -> Path:
    pg_dump = Path(remote.state.postgres_bindir) / "pg_dump"
    url = remote.url
    env = dict(os.environ, PGPASSWORD=remote.password)  # never on a command line
    subprocess.run(
        [str(pg_dump), "--no-owner", "--no-privileges", *extra, "-h", str(url.host),
         "-p", str(url.port), "-U", str(url.username), "-f", str(target), url.database],
        env=env, check=True, capture_output=True, timeout=60,
    )
    return target


@pytest.mark.postgres
@pytest.mark.sshd
def test_pg_dump_plain_sql_restores_through_the_agent(
    provisioned: Remote, pristine: Path, tmp_path: Path
) -> None:
    """Semantics: the script runs as written in one transaction. A dump made with
    ``--clean --if-exists`` replaces the live tables; one without --clean meets existing tables,
    so PostgreSQL refuses it and the database stays as it was."""
    remote = provisioned
    clean = _pg_dump(remote, tmp_path / "dump-clean.sql", "--clean", "--if-exists")
    plain = _pg_dump(remote, tmp_path / "dump.sql")
    original = data_digest(remote.url)

    _sql(remote, "DELETE FROM custom_dictionaries; UPDATE documents SET is_public = NOT is_public")
    changed = data_digest(remote.url)
    res = remote.mmops("restore", str(plain), "--yes")
    assert res.returncode == 9, res.stdout + res.stderr
    assert "was not made with pg_dump --clean" in res.stdout  # the plan said so up front
    assert "rolled back" in res.stderr and "The safety backup is" in res.stderr
    assert "Traceback" not in res.stderr
    assert data_digest(remote.url) == changed

    res = remote.make("db-restore-ops", BACKUP=str(clean), YES="1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"plain SQL dump (pg_dump {remote.state.postgres_major}." in res.stdout
    assert "alembic    file 0003_document_word_count" in res.stdout
    assert "row counts     skipped: a plain SQL dump has no manifest" in res.stdout
    assert data_digest(remote.url) == original
    assert remote.leftover_tmp() == []


@pytest.mark.postgres
@pytest.mark.sshd
def test_old_json_backup_restores_through_the_agent_with_sequences_past_the_ids(
    provisioned: Remote, pristine: Path
) -> None:
    remote = provisioned
    # The file's document_recovery entry is an error (skipped); the sandbox's rows in it
    # reference documents and users, which the file replaces: refused, nothing changed.
    before = data_digest(remote.url)
    res = remote.mmops("restore", str(OLD_JSON), "--yes")
    assert res.returncode == 8, res.stdout + res.stderr
    assert "old JSON backup taken 2024-05-01T12:00:00.123456" in res.stdout
    assert "document_recovery" in res.stderr and "The safety backup is" in res.stderr
    assert data_digest(remote.url) == before

    _sql(remote, "DELETE FROM document_recovery")
    res = remote.make("db-restore-ops", BACKUP=str(OLD_JSON), YES="1")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "old JSON backup" in out and "db.internal:5432/markdown_manager" in out
    assert "row counts     skipped: an old JSON backup has no manifest" in out
    assert "sequences" in out and "set past the restored ids" in out
    users = _sql(remote, "SELECT id, email FROM users ORDER BY id")
    docs = _sql(remote, "SELECT id, title FROM documents ORDER BY id")
    assert [u["id"] for u in users] == [2, 5]
    assert [(d["id"], d["title"]) for d in docs] == [(41, "Shopping; list"),
                                                     (57, "Zażółć gęślą jaźń")]
    new_doc = _sql(remote, "INSERT INTO documents (user_id, title) VALUES (2, 'after') "
                           "RETURNING id")[0]["id"]
    new_user = _sql(remote, "INSERT INTO users (email, display_name, password_hash) "
                            "VALUES ('n@x', 'n', 'x') RETURNING id")[0]["id"]
    assert new_doc > 57 and new_user > 5
    assert remote.leftover_tmp() == []


@pytest.mark.postgres
@pytest.mark.sshd
def test_a_file_that_is_no_backup_is_refused_before_anything_is_pushed(
    provisioned: Remote, pristine: Path, tmp_path: Path
) -> None:
    remote = provisioned
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n- milk\n- eggs\n")
    before = data_digest(remote.url)
    safety_before = _safety(remote)
    res = remote.make("db-restore-ops", BACKUP=str(notes), YES="1")
    assert res.returncode != 0
    assert ("notes.txt is neither a .mmops backup, an old JSON backup nor a plain SQL dump; "
            "nothing was changed.") in res.stderr
    assert "Traceback" not in res.stderr
    assert data_digest(remote.url) == before
    assert _safety(remote) == safety_before
    assert remote.leftover_tmp() == []

    res = remote.mmops("restore", str(OLD_JSON), "--yes", "--tables", "users")
    assert res.returncode == 2
    assert "--tables applies to .mmops backups" in res.stderr
    assert _safety(remote) == safety_before
