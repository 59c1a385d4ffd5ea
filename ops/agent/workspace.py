"""The agent's private directories under OPS_DIR: 0700, unpredictable names, owner-tagged so
the next run removes what a killed one left."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

TMP_OWNER_FILE = "owner.json"


def ops_subdir(ops_dir: Path, name: str) -> Path:
    path = ops_dir / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@contextlib.contextmanager
def private_tmpdir(ops_dir: Path, prefix: str) -> Any:
    """A 0700 dir with an unpredictable name under OPS_DIR/tmp, removed however we leave."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=ops_subdir(ops_dir, "tmp")))
    (path / TMP_OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pid_is_agent(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ops.agent" in cmdline


def stale_tmpdirs(tmp_root: Path, *, now: float | None = None, grace_s: float = 3600) -> list[Path]:
    """Temp dirs whose agent is gone (or, without an owner file, older than ``grace_s``)."""
    now = time.time() if now is None else now
    stale: list[Path] = []
    if not tmp_root.is_dir():
        return stale
    for entry in sorted(tmp_root.iterdir()):
        if not entry.is_dir():
            continue
        try:
            owner = json.loads((entry / TMP_OWNER_FILE).read_text())
            alive = _pid_is_agent(int(owner["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            alive = now - entry.stat().st_mtime < grace_s
        if not alive:
            stale.append(entry)
    return stale
