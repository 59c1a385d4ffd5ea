"""scripts/bench end to end at a tiny size: it runs, and its JSON holds positive numbers.

Timings are machine-dependent and never asserted; only that each measurement exists and that
every target of issue 12 is printed with PASS or FAIL.
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


@pytest.mark.timeout(240)
def test_bench_runs_end_to_end_and_reports_every_number(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PGPASSWORD"}}
    res = subprocess.run(
        [sys.executable, str(BENCH), "--size", "20MB", "--repeat", "1", "--many-tables", "50",
         "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=230,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    for text in ("pg_dump -Fc", "pg_dump -Fp -f FILE", "mmops backup", "2× database",
                 "50 small tables", "client CPU per GB", "load1"):
        assert text in res.stdout, text
    # Every target line ends in PASS or FAIL.
    targets = res.stdout.split("targets (issue 12):")[1].split("\n\n")[0].strip().splitlines()
    assert len(targets) >= 12 and all(
        line.endswith(("PASS", "FAIL")) or "(reported)" in line for line in targets
    ), targets
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
    assert set(data["targets"]) == {"backup_vs_plain", "backup_time_ratio", "backup_size_ratio",
                                    "restore_time_ratio", "backup_cpu_per_gb", "peak_rss_mb"}
    _positive(data["backup"]["pg_dump_plain"], "median_s", "file_bytes")
    _positive(data["cpu"], "backup_s_per_gb", "backup_baseline_s_per_gb", "restore_s_per_gb")
    scale, many = data["scale"], data["many_tables"]
    _positive(scale, "backup_time_growth", "restore_time_growth")
    assert scale["restore_2x_rows_match"] is True
    assert many["tables"] == 50 and many["mmops_restore"]["rows_match"] is True
    assert many["pg_restore"]["rows_match"] is True
    _positive(many, "backup_ratio", "restore_ratio")
    for t in [*data["targets"].values(), *scale["targets"].values(), *many["targets"].values()]:
        _positive(t, "value", "limit")
        assert isinstance(t["pass"], bool)
    for run in data["backup"]["mmops"]["runs"]:  # the machine's load is kept for every timing
        assert run["loadavg_before"] >= 0 and "other_cpu_s" in run


def test_bench_never_puts_the_password_on_a_command_line() -> None:
    text = BENCH.read_text()
    assert "shell=True" not in text
    assert "--database-url" not in text
