"""scripts/bench end to end at a tiny size: it runs, and its JSON holds positive numbers.

Timings are machine-dependent and never asserted; only that each measurement exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "scripts" / "bench"

pytestmark = pytest.mark.postgres


def _positive(d: dict, *keys: str) -> None:
    for k in keys:
        assert isinstance(d[k], (int, float)) and d[k] > 0, (k, d[k])


@pytest.mark.timeout(120)
def test_bench_runs_end_to_end_and_reports_every_number(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PGPASSWORD"}}
    res = subprocess.run(
        [sys.executable, str(BENCH), "--size", "20MB", "--repeat", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=110,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "pg_dump -Fc" in res.stdout and "mmops backup" in res.stdout
    data = json.loads(out.read_text())

    _positive(data["data"], "logical_bytes", "database_bytes", "seconds_total")
    assert data["data"]["rows"]["documents"] > 1000
    assert data["data"]["alembic_revision"]

    for section, ours, theirs in (("backup", "mmops", "pg_dump"),
                                  ("restore", "mmops", "pg_restore")):
        for tool in (ours, theirs):
            s = data[section][tool]
            assert "skipped" not in s, s
            _positive(s, "median_s", "hwm_mb", "tree_peak_rss_mb", "peak_rss_mb", "cpu_s_median")
            assert len(s["runs"]) == 1
        _positive(data[section], "time_ratio")
    _positive(data["backup"], "size_ratio")
    _positive(data["backup"]["mmops"], "file_bytes")
    _positive(data["backup"]["pg_dump"], "file_bytes")
    # Both restores brought back every row of every table.
    assert data["restore"]["mmops"]["rows_match"] is True
    assert data["restore"]["pg_restore"]["rows_match"] is True
    assert set(data["targets"]) == {"backup_time_ratio", "backup_size_ratio",
                                    "restore_time_ratio", "peak_rss_mb"}
    for t in data["targets"].values():
        _positive(t, "value", "limit")
        assert isinstance(t["pass"], bool)


def test_bench_never_puts_the_password_on_a_command_line() -> None:
    text = BENCH.read_text()
    assert "shell=True" not in text
    assert "--database-url" not in text
