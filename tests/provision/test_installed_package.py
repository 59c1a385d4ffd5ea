"""Install like any tool: the built wheel, pip-installed into a fresh venv in a temp dir (no
checkout on disk, the working directory elsewhere), gives a working `mmops` whose `remote
setup` ships the agent to the sandbox server — repacked from the installed package itself,
with the same pins — and whose `remote backup` then backs the sandbox up. Through the real
sshd and PostgreSQL of the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ops.package_identity import wheel_content_hash
from tests.remote_sandbox import ROOT, Remote

pytestmark = [pytest.mark.sshd, pytest.mark.postgres]


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, " ".join(argv) + "\n" + res.stdout + res.stderr
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built as a release would be, installed with the lock's pins into a
    fresh venv (pip takes the dependencies from its local cache where it can)."""
    base = tmp_path_factory.mktemp("pip-installed")
    dist = base / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)])
    (wheel,) = dist.glob("*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
          "--constraint", str(ROOT / "ops" / "requirements.lock"), str(wheel)], timeout=1200)
    return venv


def test_the_installed_package_has_no_checkout_beside_it(installed: Path) -> None:
    res = _run([str(installed / "bin" / "python"), "-c",
                "import ops.package_identity as p; print(p.package_dir())"], cwd="/")
    package = Path(res.stdout.strip())
    assert package.is_relative_to(installed) and not (package.parent / "pyproject.toml").exists()


def test_a_pip_installed_mmops_sets_up_the_server_and_backs_it_up(
    installed: Path, provisioned: Remote, tmp_path: Path,
) -> None:
    remote = provisioned
    ops_dir = "mmops-pip-installed"  # its own agent venv: a real install, not "verified"
    backups = tmp_path / "backups"
    env = remote.cmd_env(OPS_DIR=ops_dir, BACKUP_DIR=str(backups))
    env["PATH"] = f"{installed / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
    mmops = str(installed / "bin" / "mmops")

    res = subprocess.run([mmops, "remote", "setup", "--json"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Run mmops from the project checkout" not in res.stderr
    setup = json.loads(res.stdout)
    assert setup["action"] == "installed"
    agent = json.loads((remote.home / ops_dir / "agent.json").read_text())
    assert agent["hash"] == setup["hash"]
    # what the server got is the installed package, pins included
    (shipped,) = (remote.home / ops_dir / "wheels").glob("*.whl")
    with zipfile.ZipFile(shipped) as zf:
        lock = zf.read("ops/requirements.lock").decode()
    assert lock == (ROOT / "ops" / "requirements.lock").read_text()
    assert wheel_content_hash(shipped) == setup["hash"]

    res = subprocess.run([mmops, "remote", "backup"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert remote.password not in res.stdout + res.stderr
    files = sorted(backups.glob("*.mmops"))
    assert len(files) == 1 and files[0].name.startswith(remote.state.database)
    assert files[0].stat().st_mode & 0o777 == 0o600
    res = subprocess.run([mmops, "verify", str(files[0])], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
