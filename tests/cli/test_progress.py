"""Progress you can trust, through the real `mmops` CLI (``--progress-json``) against real
PostgreSQL: totals that done never exceeds, a restore bar that moves during a big table's COPY
naming it, progress while the backup is verified before the plan, and one way of writing sizes
and counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.cli.common import count, human_size
from ops.cli.progress import bar_total
from ops.engine.results import Progress
from tests.cli_helpers import mmops

pytestmark = pytest.mark.postgres

# ~11 MB of COPY text: several 4 MiB archive chunks. ANALYZE runs while the table is tiny and
# autovacuum is off for it, so pg_class.relpages stays stale (the "47,041 of 426 kB" bar).
STALE = """
CREATE TABLE small (id int PRIMARY KEY);
INSERT INTO small SELECT generate_series(1, 50);
CREATE TABLE big (id int PRIMARY KEY, body text) WITH (autovacuum_enabled = false);
INSERT INTO big SELECT g, repeat('x', 10) FROM generate_series(1, 10) g;
ANALYZE;
INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(11, 110000) g;
"""


def _events(stderr: str) -> list[dict]:
    return [json.loads(line)["progress"] for line in stderr.splitlines()
            if line.startswith('{"progress"')]


def _never_past_total(events: list[dict]) -> None:
    for e in events:
        if e["total"] is not None:
            assert e["done"] <= e["total"], e


@pytest.fixture
def app(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(STALE, url.database)
    return url


def _backup(url, out: Path) -> tuple[Path, list[dict]]:
    res = mmops("backup", "-o", str(out) + "/", "--json", "--progress-json", url=url)
    assert res.returncode == 0, res.stderr
    return Path(json.loads(res.stdout)["path"]), _events(res.stderr)


def test_backup_progress_total_is_never_below_done_despite_stale_statistics(app, pg15, tmp_path):
    relpages = int(pg15.psql("SELECT relpages FROM pg_class WHERE relname = 'big'",
                             app.database).strip())
    assert relpages <= 1  # the statistics are as stale as the test means them to be
    _path, events = _backup(app, tmp_path)
    data = [e for e in events if e["phase"] == "data"]
    assert len(data) > 3
    _never_past_total(data)
    last = data[-1]
    assert last["done"] == last["total"] > 10 << 20  # the real size, not relpages'


def test_restore_bar_moves_during_a_big_tables_copy_and_names_it(app, pg15, tmp_path):
    archive, _ = _backup(app, tmp_path)
    res = mmops("restore", str(archive), "--yes", "--progress-json",
                "--backup-dir", str(tmp_path / "backups"), url=app)
    assert res.returncode == 0, res.stderr
    events = _events(res.stderr)
    _never_past_total(events)
    data = [e for e in events if e["phase"] == "data" and e["item"] == "public.big"]
    # the start, the end, and several steps of the 4 MiB chunks in between
    assert len({e["done"] for e in data}) >= 4, data
    assert data[-1]["done"] <= data[-1]["total"]


def test_the_verify_before_the_plan_reports_progress_per_member(app, tmp_path):
    archive, _ = _backup(app, tmp_path)
    res = mmops("restore", str(archive), "--yes", "--tables", "small", "--progress-json",
                "--backup-dir", str(tmp_path / "backups"), url=app)
    assert res.returncode == 0, res.stderr
    plan_at = res.stderr.index("Restore onto") if "Restore onto" in res.stderr else None
    verify = [e for e in _events(res.stderr[:plan_at]) if e["phase"] == "verify"]
    counted = [e for e in verify if e["total"]]
    assert len(counted) >= 3 and len({e["item"] for e in counted}) >= 2, verify
    _never_past_total(verify)
    assert counted[-1]["done"] == counted[-1]["total"]  # every stored byte was checked


def test_plan_and_outcome_agree_in_number_with_thousands_separators(app, tmp_path):
    archive, _ = _backup(app, tmp_path)
    res = mmops("restore", str(archive), "--yes", "--tables", "big",
                "--backup-dir", str(tmp_path / "backups"), url=app)
    assert res.returncode == 0, res.stderr
    assert ("tables     1 table replaced (--tables big): 110,000 live rows → 110,000 rows "
            "from the backup") in res.stdout
    assert "    public.big" in res.stdout and "110,000 → 110,000" in res.stdout
    assert ("tables         1 table, 110,000 rows; row counts checked (110,000 rows; ok for "
            "the 1 table restored)") in res.stdout, res.stdout


def test_sizes_are_binary_everywhere_and_counts_agree_in_number() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 1536 << 20, 5 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 GiB", "5.0 TiB"]
    assert [count(n, "table") for n in (0, 1, 2, 12345)] == [
        "0 tables", "1 table", "2 tables", "12,345 tables"]
    assert bar_total(Progress("data", done=47_041, total=426)) == 47_041
    assert bar_total(Progress("data", done=5, total=426)) == 426
    assert bar_total(Progress("data", done=5)) is None


def test_inspect_and_verify_write_counts_one_way(app, tmp_path):
    archive, _ = _backup(app, tmp_path)
    res = mmops("inspect", str(archive))
    assert res.returncode == 0, res.stderr
    assert "tables:    2, 110,050 rows" in res.stdout
    big = next(line for line in res.stdout.splitlines() if "public.big" in line)
    assert "110,000 rows" in big and "MiB" in big
    res = mmops("verify", str(archive))
    assert res.returncode == 0, res.stderr
    assert " members, " in res.stdout and " MiB of data (" in res.stdout
