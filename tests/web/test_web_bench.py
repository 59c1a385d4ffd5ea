"""scripts/bench_web_memory.py keeps working (tiny sizes here; the README has the 1 GiB run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.storage
def test_the_memory_bench_measures_local_and_repository_transfers(
        seaweed, s3_bucket: str, tmp_path: Path) -> None:
    storage = tmp_path / "storage.env"
    storage.write_text("".join(f"{k}={v}\n" for k, v in seaweed.environ().items()))
    storage.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REPO"))}
    env["REPO_ENV_FILE"] = str(storage)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_web_memory.py"),
                          "--size-mb", "4", "--repo", f"s3://{s3_bucket}/bench"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "download 4 MB from the backup dir: peak RSS" in out
    assert f"download 4 MB from s3://{s3_bucket}/bench: peak RSS" in out
    assert "restore fetch of bench-20260101T000000Z.mmops (failed, phases ['download:" in out
    assert seaweed.environ()["AWS_SECRET_ACCESS_KEY"] not in out + res.stderr
