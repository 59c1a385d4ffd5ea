"""The last-resort stall abort: when cancelling cannot end a stalled run (a blocking call),
the guard thread records the stall, notifies it, and ends the process with 124. Run in a
child process (it calls os._exit), notifying a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.notify.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "HardSta11T0kenXYZ"

CHILD = """
import sys, time
from pathlib import Path
import ops.schedule.run as run
from ops.dburl import parse_database_url
from ops.notify import parse_targets
from ops.schedule.spec import ScheduleRequest

run.HARD_EXIT_GRACE_S = 1.0

async def stuck(*args, **kwargs):
    time.sleep(120)  # blocks the event loop: cancelling cannot end it

run.backup_with_stall = stuck
ops_dir = Path(sys.argv[1])
run.run_scheduled_backup(
    ops_dir, ScheduleRequest(repo=str(ops_dir / "repo"), stall_minutes=0.02, host="app"),
    parse_database_url("postgresql://app@127.0.0.1:1/app"), {}, staging=ops_dir,
    notify=parse_targets(sys.argv[2]))
print("not reached")
"""


def test_a_run_that_cancelling_cannot_end_is_recorded_notified_and_ended(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path),
                              receiver.url(f"/hard/{TOKEN}")], capture_output=True, text=True,
                             timeout=90, cwd=ROOT)
        assert res.returncode == 124, res.stdout + res.stderr
        assert "not reached" not in res.stdout
        (got,) = receiver.wait_for(1)
        status = json.loads((tmp_path / "schedule" / "status.json").read_text())
        assert status["result"] == "stalled" and status["state"] == "idle"
        assert got.body["event"] == "backup" and got.body["result"] == "stalled"
        assert got.body["message"] == status["message"]
        assert got.body["message"].startswith("The scheduled backup made no progress for 0.02 "
                                              "minutes")
        assert [d["ok"] for d in status["notified"]] == [True]
        assert TOKEN not in res.stdout + res.stderr
    finally:
        receiver.close()
