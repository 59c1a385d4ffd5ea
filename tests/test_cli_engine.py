"""The `mmops` CLI against real PostgreSQL: outputs, exit codes, one-sentence errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ops.archive import ArchiveReader
from ops.dburl import DbUrl
from ops.errors import (
    ArchiveError,
    AuthenticationError,
    DatabaseError,
    FormatVersionError,
    RestoreRefused,
)
from ops.sandbox.postgres import free_port
from tests.cli_helpers import mmops, url_text
from tests.fidelity import data_digest, load_fixture

pytestmark = pytest.mark.postgres


@pytest.fixture
def source(pg15, make_db):
    url = make_db(pg15)
    load_fixture(pg15, url.database)
    return url


@pytest.fixture
def backup_file(source, tmp_path) -> Path:
    res = mmops("backup", "-o", str(tmp_path) + "/", "--json", url=source)
    assert res.returncode == 0, res.stderr
    return Path(json.loads(res.stdout)["path"])


def _one_sentence_error(res, code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_backup_names_the_file_after_the_database_and_prints_its_path(source, tmp_path):
    res = mmops("backup", "-o", str(tmp_path), url=source)
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    assert path.parent == tmp_path
    assert path.name.startswith(source.database + "-") and path.name.endswith("Z.mmops")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_backup_json_summary_has_tables_rows_and_revision(source, tmp_path):
    res = mmops("backup", "-o", str(tmp_path / "x.mmops"), "--json", url=source)
    summary = json.loads(res.stdout)
    assert summary["alembic_revision"] == "abc123def456"
    assert summary["total_rows"] > 0 and summary["size_bytes"] > 0
    assert summary["path"].endswith("x.mmops")


def test_every_sqlalchemy_url_spelling_and_env_file_work(source, tmp_path):
    for driver in ("postgresql+asyncpg", "postgresql+psycopg"):
        env_file = tmp_path / f"{driver}.env"
        env_file.write_text(f"DATABASE_URL={url_text(source, driver)}\n")
        res = mmops("backup", "--env-file", str(env_file), "-o", str(tmp_path / f"{driver}.mmops"))
        assert res.returncode == 0, res.stderr


def test_inspect_reads_the_manifest_and_verify_rechecks(backup_file, source):
    res = mmops("inspect", str(backup_file), "--json")
    manifest = json.loads(res.stdout)
    assert manifest["database"] == source.database
    assert manifest["alembic_revision"] == "abc123def456"
    assert all({"schema", "name", "rows"} <= set(t) for t in manifest["tables"])
    text = json.dumps(manifest)
    assert source.password not in text and "postgresql://" not in text
    res = mmops("verify", str(backup_file))
    assert res.returncode == 0 and res.stdout.startswith("OK")


def test_restore_cli_round_trip_into_an_empty_database(backup_file, source, pg15, make_db):
    dst = make_db(pg15)
    res = mmops("restore", str(backup_file), "--json", url=dst)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["total_rows"] > 0
    assert data_digest(dst) == data_digest(source)


def test_unreachable_database_is_one_sentence_and_exit_code(tmp_path):
    url = DbUrl("127.0.0.1", free_port(), "nope", "u", "pw-not-shown", {})
    line = _one_sentence_error(mmops("backup", "-o", str(tmp_path), url=url),
                               DatabaseError.exit_code)
    assert "Cannot reach PostgreSQL" in line
    assert not list(tmp_path.iterdir())


def test_bad_password_message_does_not_contain_the_password(source, tmp_path):
    wrong = DbUrl(source.host, source.port, source.database, source.username,
                  "Wr0ng-Secret-Value", {})
    res = mmops("backup", "-o", str(tmp_path), url=wrong)
    line = _one_sentence_error(res, AuthenticationError.exit_code)
    assert "rejected the password" in line
    assert "Wr0ng-Secret-Value" not in res.stderr + res.stdout


def test_missing_database_url_says_how_to_give_one(tmp_path):
    res = mmops("backup", "-o", str(tmp_path))
    assert "No database given" in _one_sentence_error(res, 3)


def test_corrupted_file_names_the_bad_member(backup_file):
    # Flip a byte in the middle of one table's compressed data (offsets from the manifest:
    # where a byte lands otherwise depends on how parallel members interleaved).
    with ArchiveReader(backup_file) as reader:
        table = max(reader.manifest["tables"], key=lambda t: t["stored_bytes"])
        offset, length = reader.member(table["member"]).chunks[0]
    data = bytearray(backup_file.read_bytes())
    data[offset + length // 2] ^= 0xFF
    backup_file.write_bytes(bytes(data))
    line = _one_sentence_error(mmops("verify", str(backup_file)), ArchiveError.exit_code)
    assert table["member"] in line


def test_truncated_file_is_reported(backup_file):
    data = backup_file.read_bytes()
    backup_file.write_bytes(data[: len(data) * 2 // 3])
    for cmd in ("verify", "inspect"):
        line = _one_sentence_error(mmops(cmd, str(backup_file)), ArchiveError.exit_code)
        assert "truncated" in line or "incomplete" in line


def test_not_a_backup_and_wrong_format_version(tmp_path, backup_file):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n" * 100)
    line = _one_sentence_error(mmops("inspect", str(junk)), ArchiveError.exit_code)
    assert "not a markdown-manager-ops backup" in line
    data = bytearray(backup_file.read_bytes())
    data[10:12] = (99).to_bytes(2, "big")  # fixed header: magic (10 bytes) + version (u16)
    backup_file.write_bytes(bytes(data))
    line = _one_sentence_error(mmops("verify", str(backup_file)), FormatVersionError.exit_code)
    assert "99" in line


def test_restore_into_a_non_empty_database_plans_replace_and_needs_the_typed_name(
    backup_file, pg15, make_db
):
    dst = make_db(pg15)
    pg15.psql("CREATE TABLE mine (x int); INSERT INTO mine VALUES (1);", dst.database)
    before = data_digest(dst)
    res = mmops("restore", str(backup_file), url=dst)
    line = _one_sentence_error(res, RestoreRefused.exit_code)
    assert f"The backup is of database {backup_file.name.rsplit('-', 1)[0]!r}" in line
    res = mmops("restore", str(backup_file), "--force", url=dst)
    assert "--yes" in _one_sentence_error(res, RestoreRefused.exit_code)
    assert "(mode replace)" in res.stdout and "will disappear: public.mine (1 row)" in res.stdout
    assert data_digest(dst) == before
    line = _one_sentence_error(mmops("restore", str(backup_file), "--mode", "create", url=dst),
                               RestoreRefused.exit_code)
    assert "--mode create needs an empty database" in line
    assert data_digest(dst) == before


def test_replace_without_yes_and_without_a_terminal_is_refused(backup_file, source, pg15):
    res = mmops("restore", str(backup_file), "--mode", "replace", url=source)
    assert "--yes" in _one_sentence_error(res, RestoreRefused.exit_code)
    res = mmops("restore", str(backup_file), "--mode", "replace", "--yes", url=source)
    assert res.returncode == 0, res.stderr
    assert "live rows →" in res.stdout  # the plan is shown before acting


def test_mode_or_tables_on_an_old_json_backup_is_a_usage_error(pg15, make_db):
    legacy = Path(__file__).parent / "fixtures" / "legacy"
    legacy = legacy / "production_backup_20240501_120000.json"
    dst = make_db(pg15)
    for extra in (["--mode", "replace"], ["--tables", "users"]):
        res = mmops("restore", str(legacy), "--yes", *extra, url=dst)
        assert "applies to .mmops backups" in _one_sentence_error(res, 2)
