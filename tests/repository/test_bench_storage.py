"""`make bench`'s storage rows run: the S3 repository against boto3's own transfer, with ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.storage

ROOT = Path(__file__).resolve().parents[2]


def test_the_storage_bench_reports_both_ratios_against_the_clients_own_transfer() -> None:
    res = subprocess.run([sys.executable, "-m", "tests.repository.bench_storage", "8"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for what in ("upload", "download"):
        assert re.search(rf"^  {what}\s+\d+\.\d\dx   ≤ 1\.0x   (PASS|FAIL)$", res.stdout, re.M), \
            res.stdout
    assert re.search(r"^upload: encrypted, S3Repository\s+\d+\.\d MB/s", res.stdout, re.M)
