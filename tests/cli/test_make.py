"""The Make targets as users type them: a misspelt variable stops make with a "did you mean"
sentence before anything runs; no HOST says, first, that the sandbox is the server; make echoes
the complete mmops command it runs (every setting a flag, never a secret)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _make(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
          ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in {"HOST", "HOSTS", "REPO", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(["make", "--no-print-directory", "-C", str(cwd), *args],
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("typo", "meant"), [
    ("HSOT=prod", "HOST"), ("ENCRYPT_T0=age1xyz", "ENCRYPT_TO"), ("REOP=s3://b/p", "REPO"),
    ("BACKUP_DRI=/tmp", "BACKUP_DIR"),
])
def test_a_misspelt_variable_on_makes_command_line_stops_with_did_you_mean(
        tmp_path: Path, typo: str, meant: str) -> None:
    res = _make("list-ops", f"BACKUP_DIR={tmp_path}", typo)
    assert res.returncode == 2, res.stdout + res.stderr
    name = typo.split("=")[0]
    assert f"{name} (on make's command line) is not a variable this Makefile knows: did you " \
           f"mean {meant}?" in res.stderr
    assert typo.split("=", 1)[1] not in res.stderr  # a value (maybe a secret) is never repeated
    assert "mmops" not in res.stdout  # nothing ran


def test_a_misspelt_variable_with_our_prefix_in_the_environment_stops_make(tmp_path: Path
                                                                          ) -> None:
    res = _make("list-ops", f"BACKUP_DIR={tmp_path}", env={"MMOPS_REPPO": "s3://b/p"})
    assert res.returncode == 2
    assert "MMOPS_REPPO (in the environment) is not a variable this Makefile knows: did you " \
           "mean MMOPS_REPO?" in res.stderr
    # Other people's variables in the environment are none of our business.
    ok = _make("list-ops", f"BACKUP_DIR={tmp_path}", env={"SSH_AUTH_SOCK": "/x", "EDITOR": "vi"})
    assert ok.returncode == 0, ok.stderr


def test_every_remote_target_is_stopped_by_a_typo_before_anything_runs() -> None:
    for target in ("db-backup-ops", "db-restore-ops", "db-backup-ssh", "setup-remote-ops",
                   "schedule-ops", "demo", "test"):
        res = _make("-n", target, "HSOT=prod")
        assert res.returncode == 2 and "did you mean HOST?" in res.stderr, target


@pytest.fixture
def stub_venv(tmp_path: Path) -> Path:
    """A venv whose mmops prints the argv it got (the real one is tested everywhere else):
    what make runs, exactly."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    mmops = venv / "bin" / "mmops"
    mmops.write_text('#!/bin/sh\nfor a in "$@"; do printf "<%s>" "$a"; done; echo\n')
    mmops.chmod(0o755)
    (venv / ".installed").touch()
    bootstrap = tmp_path / "bootstrap"
    bootstrap.mkdir()
    (bootstrap / "demo").touch()
    (bootstrap / "test").touch()
    return tmp_path


def test_make_echoes_the_complete_command_it_runs_without_secrets(stub_venv: Path) -> None:
    res = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                "db-backup-ops", "HOST=deploy@app.example.com", "ENCRYPT_TO=age1pub",
                "KEEP=daily=7 weekly=4", "REPO=s3://bucket/it's",
                env={"NOTIFY": "https://hooks.example/T0KEN", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert res.returncode == 0, res.stderr
    echoed, ran = res.stdout.splitlines()[:2]
    assert echoed.endswith(" remote backup --host 'deploy@app.example.com' --backup-dir "
                           "'./backups' --repo 's3://bucket/it'\\''s' --encrypt-to 'age1pub' "
                           "--keep 'daily=7 weekly=4'"), echoed
    # the echoed line is the command that ran, word for word
    assert ran == "".join(f"<{a}>" for a in shlex.split(echoed)[1:])
    assert "T0KEN" not in res.stdout + res.stderr and "s3cr3t" not in res.stdout + res.stderr


def test_no_host_says_first_that_the_sandbox_is_the_server(stub_venv: Path) -> None:
    res = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                "db-restore-ops", "BACKUP=latest", "YES=1")
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("make db-restore-ops: no HOST given, so the server is the "
                                 "local sandbox")
    assert "<remote><restore><--backup-dir><./backups><--yes><latest>" in res.stdout
    with_host = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                      "db-restore-ops", "BACKUP=latest", "HOST=app")
    assert "sandbox" not in with_host.stderr + with_host.stdout


def test_from_database_needs_no_backup_and_reaches_the_cli(stub_venv: Path) -> None:
    res = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                "db-restore-ssh", "HOST=staging", "FROM_DATABASE=markdown", "FORCE=1")
    assert res.returncode == 0, res.stderr
    assert ("<tunnel><restore><--host><staging><--backup-dir><./backups><--force>"
            "<--from-database><markdown>") in res.stdout
    usage = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                  "db-restore-ssh", "HOST=staging")
    assert usage.returncode == 2 and "usage: make db-restore-ssh BACKUP=" in usage.stderr


@pytest.mark.parametrize("target", ["db-restore-ops", "db-restore-ssh"])
def test_with_dependents_reaches_the_restore_targets_as_a_flag(stub_venv: Path, target: str
                                                               ) -> None:
    res = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                target, "HOST=app", "BACKUP=latest", "TABLES=documents", "WITH_DEPENDENTS=1")
    assert res.returncode == 0, res.stderr
    assert "<--tables><documents><--with-dependents>" in res.stdout
    off = _make(f"VENV={stub_venv / 'venv'}", f"BOOTSTRAP_DIR={stub_venv / 'bootstrap'}",
                target, "HOST=app", "BACKUP=latest", "WITH_DEPENDENTS=0")
    assert off.returncode == 0 and "--with-dependents" not in off.stdout
