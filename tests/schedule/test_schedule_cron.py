"""`make schedule-ops` on a server without a running systemd (the sandbox here): a crontab
entry for the login user, whose exact command — run by hand as cron would — backs up into the
repository, records its result for `make schedule-status`, never runs twice at once, aborts a
stalled run; `make unschedule-ops` removes it all. Through the real sshd and agent."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.schedule.crontab import BEGIN, END
from tests.remote_sandbox import Remote

pytestmark = [pytest.mark.sshd, pytest.mark.postgres]
RUNUSER = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin") or "runuser"


def _crontab(remote: Remote) -> str:
    res = subprocess.run(["crontab", "-l", "-u", remote.state.login_user], capture_output=True,
                         text=True)
    return res.stdout if res.returncode == 0 else ""


def _scheduled_line(remote: Remote) -> str:
    lines = _crontab(remote).splitlines()
    assert BEGIN in lines and END in lines, lines
    return lines[lines.index(BEGIN) + 1]


def _run_as_cron(remote: Remote, line: str, timeout: float = 300
                 ) -> subprocess.CompletedProcess[str]:
    """The crontab line's command, run like cron: /bin/sh -c, the user's minimal env."""
    command = line.split(None, 5)[5].replace("\\%", "%")
    user = remote.state.login_user
    env = {"HOME": str(remote.home), "LOGNAME": user, "USER": user, "SHELL": "/bin/sh",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([RUNUSER, "-u", user, "--", "/bin/sh", "-c", command], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd="/")


def _next_second() -> None:
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)


def _status(remote: Remote) -> dict:
    return json.loads((remote.ops_dir / "schedule" / "status.json").read_text())


@pytest.fixture
def scheduled(provisioned: Remote, cron_daemon: None) -> Iterator[Remote]:
    yield provisioned
    provisioned.make("unschedule-ops")


def test_cron_schedule_installs_runs_reports_and_is_removed(scheduled: Remote) -> None:
    remote = scheduled
    repo = remote.home / "scheduled-backups"
    res = remote.make("schedule-ops", REPO=str(repo), KEEP="last=2", STALL="5")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Scheduled backup installed on" in res.stdout and "(cron)" in res.stdout
    assert "prove it  make schedule-run-ops" in res.stdout

    line = _scheduled_line(remote)
    python = remote.ops_dir / "venv" / "bin" / "python"
    log = remote.ops_dir / "schedule" / "cron.log"
    assert line == (f"0 2 * * * {shlex.quote(str(python))} -m ops.agent scheduled-backup "
                    f"--ops-dir {shlex.quote(str(remote.ops_dir))} >> {shlex.quote(str(log))} "
                    "2>&1")
    for name in ("schedule.json", "storage.env"):
        assert (remote.ops_dir / "schedule" / name).stat().st_mode & 0o777 == 0o600

    for _ in range(3):
        _next_second()  # backups are named by the second they were taken in
        ran = _run_as_cron(remote, line)
        assert ran.returncode == 0, log.read_text()[-2000:]
    backups = sorted(p.name for p in repo.iterdir() if p.name.endswith(".mmops"))
    assert len(backups) == 2 and all(b.startswith(remote.state.database) for b in backups)
    status = _status(remote)
    assert status["result"] == "ok" and status["state"] == "idle"
    assert status["backup"]["name"] == backups[-1] and len(status["backup"]["deleted"]) == 1
    assert '"event": "result"' in log.read_text()

    res = remote.make("schedule-status")
    assert res.returncode == 0, res.stderr
    assert "\nSCHEDULE OK - " in res.stdout
    assert "(cron): *-*-* 02:00:00 UTC" in res.stdout
    assert f"result    ok: {backups[-1]}" in res.stdout and "next run  " in res.stdout

    res = remote.make("unschedule-ops")
    assert res.returncode == 0, res.stderr
    assert "removed crontab entry of" in res.stdout
    assert BEGIN not in _crontab(remote)
    assert not (remote.ops_dir / "schedule" / "storage.env").exists()
    res = remote.make("schedule-status")
    assert "No scheduled backup on" in res.stdout and "result    ok" in res.stdout


def test_other_crontab_lines_of_the_user_survive_install_and_removal(scheduled: Remote) -> None:
    remote = scheduled
    theirs = "MAILTO=''\n17 3 * * * /bin/true # the user's own job\n"
    subprocess.run(["crontab", "-u", remote.state.login_user, "-"], input=theirs, text=True,
                   check=True)
    assert remote.make("schedule-ops", REPO=str(remote.home / "b2")).returncode == 0
    assert _crontab(remote).startswith(theirs)
    assert remote.make("unschedule-ops").returncode == 0
    assert _crontab(remote) == theirs
    subprocess.run(["crontab", "-u", remote.state.login_user, "-r"], check=False)


def test_a_second_run_while_one_is_running_does_nothing(scheduled: Remote) -> None:
    remote = scheduled
    assert remote.make("schedule-ops", REPO=str(remote.home / "b3")).returncode == 0
    line = _scheduled_line(remote)
    lock = remote.ops_dir / "schedule" / "run.lock"
    holder = subprocess.Popen(
        [RUNUSER, "-u", remote.state.login_user, "--", "python3", "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, b'4242')\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = (remote.ops_dir / "schedule" / "status.json").exists()
        ran = _run_as_cron(remote, line)
        assert ran.returncode == 1
        log = (remote.ops_dir / "schedule" / "cron.log").read_text()
        assert "Another scheduled backup is still running (pid 4242)" in log
        assert not (remote.home / "b3").exists() or not list((remote.home / "b3").iterdir())
        assert (remote.ops_dir / "schedule" / "status.json").exists() == before
    finally:
        holder.communicate("", timeout=10)


@contextlib.contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """SIGSTOP the sandbox's postmaster and all its backends; SIGCONT however we leave."""
    pids = [pid] + [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat")
                    if _ppid(p) == pid]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def _ppid(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.slow
def test_a_run_against_a_stopped_database_is_aborted_after_the_stall_time(
    scheduled: Remote,
) -> None:
    remote = scheduled
    repo = remote.home / "b4"
    assert remote.make("schedule-ops", REPO=str(repo), STALL="0.1").returncode == 0
    line = _scheduled_line(remote)
    with _stopped(remote.state.postgres_pid):
        ran = _run_as_cron(remote, line, timeout=200)
    assert ran.returncode == 124
    status = _status(remote)
    assert status["result"] == "stalled" and status["state"] == "idle"
    assert status["message"].startswith("The scheduled backup made no progress for 0.1 minutes")
    assert remote.leftover_tmp() == []
    assert not repo.exists() or not list(repo.iterdir())
    res = remote.make("schedule-status")
    assert "result    stalled: The scheduled backup made no progress" in res.stdout
    # and the next run (database answering again) succeeds
    assert _run_as_cron(remote, line).returncode == 0
    assert _status(remote)["result"] == "ok"


@pytest.mark.storage
def test_storage_keys_reach_a_0600_file_on_the_server_and_nowhere_else(
    scheduled: Remote, seaweed, s3_bucket: str,
) -> None:
    remote = scheduled
    storage = seaweed.environ()
    secret = storage["AWS_SECRET_ACCESS_KEY"]
    repo = f"s3://{s3_bucket}/scheduled"
    res = remote.make("schedule-ops", REPO=repo, KEEP="daily=7", **storage)
    assert res.returncode == 0, res.stdout + res.stderr
    assert secret not in res.stdout + res.stderr
    assert "AWS_SECRET_ACCESS_KEY" in res.stdout  # the names, never the values
    env_file = remote.ops_dir / "schedule" / "storage.env"
    assert env_file.stat().st_mode & 0o777 == 0o600 and secret in env_file.read_text()
    assert secret not in _crontab(remote)
    assert secret not in (remote.ops_dir / "schedule" / "schedule.json").read_text()
    line = _scheduled_line(remote)
    assert _run_as_cron(remote, line).returncode == 0
    objects = seaweed.client().list_objects_v2(Bucket=s3_bucket, Prefix="scheduled/")
    names = [o["Key"] for o in objects.get("Contents", [])]
    assert any(n.endswith(".mmops") for n in names), names
    assert secret not in (remote.ops_dir / "schedule" / "cron.log").read_text()
