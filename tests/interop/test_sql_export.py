"""`mmops export --format sql`: stock psql restores the script with the same fidelity."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from ops.engine.backup import backup
from ops.interop.sql_export import export_sql
from tests.engine.test_engine_roundtrip import assert_same_schema
from tests.fidelity import data_digest, load_fixture, schema_text

pytestmark = pytest.mark.postgres


def _psql_file(server, database: str, script: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": server.password}
    return subprocess.run(
        [str(server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
         "-h", "127.0.0.1", "-p", str(server.port), "-U", server.superuser,
         "-d", database, "-f", str(script)],
        capture_output=True, text=True, env=env,
    )


def test_exported_sql_restores_with_stock_psql_identically(pg15, make_db, tmp_path):
    src = make_db(pg15)
    load_fixture(pg15, src.database)
    archive = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    result = export_sql(archive, tmp_path / "b.sql")
    assert (Path(result.path).stat().st_mode & 0o777) == 0o600
    dst = make_db(pg15)
    res = _psql_file(pg15, dst.database, Path(result.path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_schema(schema_text(pg15.bindir, src), schema_text(pg15.bindir, dst))
    assert data_digest(src) == data_digest(dst)


def test_exported_sql_that_fails_leaves_the_database_empty(pg15, make_db, tmp_path):
    src = make_db(pg15)
    load_fixture(pg15, src.database)
    archive = Path(asyncio.run(backup(src, tmp_path / "b.mmops")).path)
    script = Path(export_sql(archive, tmp_path / "b.sql").path)
    text = script.read_text()
    script.write_text(text.replace("COMMIT;\n", "SELECT 1/0;\nCOMMIT;\n"))
    dst = make_db(pg15)
    res = _psql_file(pg15, dst.database, script)
    assert res.returncode != 0
    count = pg15.psql(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
        dst.database,
    )
    assert count.strip() == "0"
