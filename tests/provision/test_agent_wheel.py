"""The agent wheel from a checkout installed the way `make demo` installs it (`pip install -e
.`, no test tools, so no `build`): pip builds it, and it holds exactly the package the laptop
runs (same content hash, the lock inside)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ops.package_identity import content_hash, wheel_content_hash
from tests.remote_sandbox import ROOT


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, " ".join(argv) + "\n" + res.stdout + res.stderr
    return res


@pytest.fixture(scope="module")
def demo_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv like `make demo`'s: the checkout, editable, without the [test] extra."""
    venv = tmp_path_factory.mktemp("demo-like") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
          "--constraint", str(ROOT / "ops" / "requirements.lock"), "-e", str(ROOT)],
         timeout=1200)
    return venv


def test_a_checkout_without_the_build_tool_still_makes_the_agent_wheel(
    demo_venv: Path, tmp_path: Path,
) -> None:
    python = str(demo_venv / "bin" / "python")
    for tool in ("build", "pytest"):
        res = subprocess.run([python, "-c", f"import {tool}"], capture_output=True, text=True)
        assert res.returncode != 0, f"{tool} is installed: not a package-only venv"
    out = tmp_path / "out"
    out.mkdir()
    res = _run([python, "-c", "import sys; from pathlib import Path; "
                "from ops.provision.wheel import build_agent_wheel; "
                "print(build_agent_wheel(Path(sys.argv[1])))", str(out)], cwd="/", timeout=900)
    wheel = Path(res.stdout.strip().splitlines()[-1])
    assert wheel.parent == out and wheel.suffix == ".whl"
    assert wheel_content_hash(wheel) == content_hash(ROOT / "ops")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("ops/requirements.lock") == (ROOT / "ops" / "requirements.lock").read_bytes()
