"""`make test` on a fresh machine bootstraps exactly what CI installs: one script
(scripts/bootstrap) used by `.ci/run`, `make test` and `make demo`; without root it names the
command to run instead of letting the tests skip or fail later."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory the unprivileged user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mmops-test-bootstrap-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def path_without_age(public_dir: Path) -> str:
    """A PATH on which everything of /usr/bin is found except the age CLI (as on a machine
    where the age package is not installed)."""
    bindir = public_dir / "bin"
    bindir.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if entry.name not in {"age", "age-keygen"}:
            (bindir / entry.name).symlink_to(entry)
    return f"{bindir}:/usr/sbin:/sbin"


def _as_nobody(argv: list[str], path: str, cwd: Path = ROOT
               ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": "/tmp", "LANG": "C.UTF-8"}
    return subprocess.run([*NOBODY, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_bootstrap_without_root_names_the_packages_and_the_command(path_without_age: str
                                                                   ) -> None:
    res = _as_nobody(["scripts/bootstrap", "test"], path_without_age)
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stderr.strip() == (
        "error: missing system packages for make test: age; install them with `sudo apt-get "
        "install -y age` (or run `sudo scripts/bootstrap test`).")
    demo = _as_nobody(["scripts/bootstrap", "demo"], path_without_age)  # the demo needs no age
    assert demo.returncode == 0, demo.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_make_test_bootstraps_first_and_stops_with_that_sentence(path_without_age: str,
                                                                 public_dir: Path) -> None:
    stamps = public_dir / "stamps"
    stamps.mkdir(mode=0o777)
    stamps.chmod(0o777)
    res = _as_nobody(["make", "--no-print-directory", "test", f"BOOTSTRAP_DIR={stamps}",
                      "PYTEST_ARGS=--collect-only -q tests/test_layers.py"], path_without_age)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "missing system packages for make test: age; install them with `sudo apt-get " \
           "install -y age`" in res.stderr
    assert not (stamps / "test").exists()  # not marked done: the next `make test` asks again


def test_bootstrap_with_everything_installed_does_nothing_and_marks_it_done(tmp_path: Path
                                                                            ) -> None:
    res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT),
                          f"BOOTSTRAP_DIR={tmp_path}", f"{tmp_path}/test"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "installing" not in res.stdout
    assert (tmp_path / "test").exists()


def test_ci_make_test_and_make_demo_use_the_one_bootstrap_script() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/bootstrap test" in ci and "apt-get" not in ci
    plan = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "test", "demo",
                           "BOOTSTRAP_DIR=/nonexistent/stamps"], capture_output=True, text=True,
                          timeout=60).stdout
    assert "scripts/bootstrap test" in plan and "scripts/bootstrap demo" in plan


BOOTSTRAPPED = re.compile(r"\b(age|cron|crontab|chromium|sshd|openssh|systemd-analyze|iproute2|"
                          r"make|postgresql-15|PostgreSQL 15|\.installed)\b", re.IGNORECASE)


def test_no_test_skips_for_something_the_bootstrap_installs() -> None:
    """A skip on a missing tool hides that `make test` did not test it: the tests call
    tests.conftest.require (a failure naming scripts/bootstrap) instead."""
    skips = []
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"pytest\.(skip|mark\.skipif)\((.{0,240})", text, re.DOTALL):
            call = match.group(2).split("\n\n")[0]
            if BOOTSTRAPPED.search(call) and "geteuid" not in call:
                line = text[:match.start()].count("\n") + 1
                skips.append(f"{path.relative_to(ROOT)}:{line}")
    assert skips == []
