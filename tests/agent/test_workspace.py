"""The agent's workspace: temp dirs of dead agents are found and removed by the next run."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from ops.agent.workspace import stale_tmpdirs


def test_stale_tmpdirs_are_those_whose_agent_is_gone(tmp_path: Path) -> None:
    dead = tmp_path / "backup-dead"
    dead.mkdir()
    proc = subprocess.Popen(["true"])
    proc.wait()
    (dead / "owner.json").write_text(json.dumps({"pid": proc.pid}))
    fresh = tmp_path / "backup-fresh"  # no owner file yet, young: in use
    fresh.mkdir()
    old = tmp_path / "backup-old"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert stale_tmpdirs(tmp_path) == [old, dead] or stale_tmpdirs(tmp_path) == [dead, old]
