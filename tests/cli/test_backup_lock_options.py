"""The backup's lock behaviour reaches the CLI: --backup-lock-timeout (LOCK_TIMEOUT) names the
table it waited for, in one sentence, and leaves no file (real PostgreSQL, the real `mmops`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.cli_helpers import MMOPS, url_text

pytestmark = pytest.mark.postgres


def test_backup_behind_a_held_lock_gives_up_after_the_cli_timeout_naming_the_table(
    pg15, make_db, tmp_path: Path
) -> None:
    url = make_db(pg15)
    pg15.psql("CREATE TABLE busy (id int PRIMARY KEY); INSERT INTO busy VALUES (1);",
              url.database)

    async def scenario() -> subprocess.CompletedProcess[str]:
        holder = await asyncpg.connect(**url.connect_kwargs())
        try:
            await holder.execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
            return await asyncio.to_thread(
                subprocess.run,
                [str(MMOPS), "backup", "-o", str(tmp_path) + "/", "--backup-lock-timeout", "1"],
                env={**os.environ, "DATABASE_URL": url_text(url)}, capture_output=True,
                text=True, timeout=120,
            )
        finally:
            await holder.close()

    res = asyncio.run(scenario())
    assert res.returncode == 4, res.stderr  # DatabaseError: could not get the lock in time
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "busy" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []
