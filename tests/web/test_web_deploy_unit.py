"""deploy/mmops-web.service is a valid systemd unit (systemd-analyze verify, no warnings)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "mmops-web.service"


def test_the_web_service_unit_verifies_without_warnings(tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (package systemd)")
    mmops = Path(sys.executable).with_name("mmops")
    text = UNIT.read_text().replace("/opt/markdown-manager-ops/venv/bin/mmops", str(mmops))
    unit = tmp_path / "mmops-web.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "--env-file" in text and "MMOPS_WEB_PASSWORD_HASH" in text
    assert "ProtectSystem=strict" in text and "PrivateTmp=yes" in text
