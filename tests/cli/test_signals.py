"""Ctrl-C and SIGTERM of the real `mmops` (direct mode): one sentence, exit 130, nothing left
behind, and a message that never claims "nothing was changed" about a restore that may have
committed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_helpers import MMOPS, url_text

pytestmark = pytest.mark.postgres

BIG = """
CREATE TABLE big (id int PRIMARY KEY, body text);
INSERT INTO big SELECT g, repeat(md5(g::text), 40) FROM generate_series(1, 60000) g;
CREATE TABLE small (id int PRIMARY KEY);
INSERT INTO small SELECT generate_series(1, 10);
"""


@pytest.fixture
def big(pg15, make_db):
    url = make_db(pg15)
    pg15.psql(BIG, url.database)
    return url


def _start(args: list[str], url) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = url_text(url)
    return subprocess.Popen([str(MMOPS), *args, "--progress-json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)


def _signal_when(proc: subprocess.Popen[str], when: Callable[[dict], bool],
                 sig: signal.Signals) -> str:
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("{") and when(json.loads(line)["progress"]):
                proc.send_signal(sig)
                break
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_direct_backup_is_one_sentence_and_leaves_no_file(
    big, tmp_path: Path, sig: signal.Signals
) -> None:
    proc = _start(["backup", "-o", str(tmp_path) + "/"], big)
    err = _signal_when(proc, lambda p: p["phase"] == "data" and p["done"] > 200_000, sig)
    assert proc.returncode == 130, err
    errors = [ln for ln in err.splitlines() if not ln.startswith("{")]
    assert len(errors) == 1 and "interrupted" in errors[0], err
    assert "Traceback" not in err and "Event loop is closed" not in err
    assert "Task was destroyed" not in err
    assert list(tmp_path.iterdir()) == []  # no partial file, no final file


def test_interrupting_a_restore_never_says_nothing_changed_once_it_may_have_committed(
    big, pg15, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    res = subprocess.run([str(MMOPS), "backup", "-o", str(backups) + "/", "--json"],
                         env={**os.environ, "DATABASE_URL": url_text(big)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    archive = json.loads(res.stdout)["path"]
    pg15.psql("DELETE FROM small WHERE id > 5", big.database)
    proc = _start(["restore", archive, "--yes", "--backup-dir", str(backups)], big)
    err = _signal_when(proc, lambda p: p["phase"] == "post-data", signal.SIGINT)
    message = [ln for ln in err.splitlines() if ln.startswith("error:")]
    small = int(pg15.psql("SELECT count(*) FROM small", big.database).strip())
    if proc.returncode == 0:  # the restore finished before the signal landed
        assert small == 10
        return
    assert proc.returncode == 130 and len(message) == 1, err
    assert "nothing was changed" not in message[0] and "rolled back" not in message[0]
    assert "The safety backup is" in message[0]
    assert small in (5, 10)  # either as it was or fully restored, never half
