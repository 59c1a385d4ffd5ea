"""A schedule cannot look healthy while failing: `make schedule-ops` proves a run can work
before installing (the backup directory writable by the server user, the repository
reachable, the scheduler running), `mmops schedule run-now` (`make schedule-run-ops`) runs it
once as the scheduler would, and `mmops schedule status` exits with Nagios codes — CRITICAL
when the last run failed, when runs were missed or when the cron daemon is not running,
WARNING when one run is late, UNKNOWN when the status cannot be read — saying which in its
first line. Through the real sshd, agent and cron daemon of the sandbox."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.sandbox.postgres import free_port
from ops.schedule.crontab import BEGIN
from ops.schedule.health import CRITICAL, OK, WARNING, ScheduleFacts, evaluate
from tests.cron_daemon import running_cron_daemon
from tests.remote_sandbox import MMOPS, Remote
from tests.schedule.test_schedule_cron import _crontab

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def _facts(**kw: object) -> ScheduleFacts:
    base: dict[str, object] = dict(installed=True, scheduler="cron", present=True,
                                   scheduler_running=True, interval=DAY,
                                   installed_at=NOW - 30 * DAY,
                                   last=_ran(dt.timedelta(hours=2)))
    base.update(kw)
    return ScheduleFacts(**base)  # type: ignore[arg-type]


def _ran(ago: dt.timedelta, result: str = "ok", message: str = "x.mmops: 1 bytes") -> dict:
    started = (NOW - ago).isoformat(timespec="seconds")
    return {"state": "idle", "started": started, "finished": started, "result": result,
            "message": message}


# --- the verdict (pure) -------------------------------------------------------------------

def test_a_fresh_schedule_that_is_not_due_yet_is_ok() -> None:
    health = evaluate(_facts(installed_at=NOW - dt.timedelta(hours=2), last={}), NOW)
    assert health.code == OK and health.line("h").startswith("SCHEDULE OK - ")


def test_a_failed_last_run_is_critical_and_says_why() -> None:
    health = evaluate(_facts(last=_ran(dt.timedelta(hours=3), "failed",
                                       "Permission denied: '/srv/b'.")), NOW)
    assert health.code == CRITICAL
    assert health.line("h") == ("SCHEDULE CRITICAL - on h: the last run "
                                "(2026-12-06T09:00:00+00:00) failed: Permission denied: "
                                "'/srv/b'.")


def test_one_missed_run_is_a_warning_two_are_critical() -> None:
    one = evaluate(_facts(last=_ran(DAY + dt.timedelta(hours=2))), NOW)
    assert one.code == WARNING and "1 scheduled run missed" in one.problems[0]
    two = evaluate(_facts(last=_ran(3 * DAY)), NOW)
    assert two.code == CRITICAL and "2 scheduled runs missed" in two.problems[0]
    never = evaluate(_facts(installed_at=NOW - 3 * DAY, last={}), NOW)
    assert never.code == CRITICAL and "the schedule has never run" in never.problems[0]


def test_a_reinstall_counts_from_the_install_not_from_an_old_run() -> None:
    health = evaluate(_facts(last=_ran(5 * DAY), installed_at=NOW - dt.timedelta(hours=1)), NOW)
    assert health.code == OK


def test_a_stopped_scheduler_or_a_missing_entry_or_nothing_installed_is_critical() -> None:
    stopped = evaluate(_facts(scheduler_running=False,
                              scheduler_problem="the cron daemon is not running"), NOW)
    assert stopped.code == CRITICAL and stopped.problems == ["the cron daemon is not running"]
    missing = evaluate(_facts(present=False), NOW)
    assert missing.code == CRITICAL and "missing from cron" in missing.problems[0]
    assert evaluate(ScheduleFacts(installed=False), NOW).code == CRITICAL


def test_a_run_that_died_without_a_result_is_critical() -> None:
    last = {"state": "running", "pid": 999999, "started": NOW.isoformat()}
    health = evaluate(_facts(last=last, last_pid_alive=False), NOW)
    assert health.code == CRITICAL and "died without a result" in health.problems[0]


# --- through the real interface -------------------------------------------------------------

def _schedule(remote: Remote, *args: str, timeout: float = 300, **env: str
              ) -> subprocess.CompletedProcess[str]:
    """`mmops schedule …` as the operator types it (its own exit code, not make's 2)."""
    res = subprocess.run([MMOPS, "schedule", *args], env=remote.cmd_env(**env),
                         capture_output=True, text=True, timeout=timeout, cwd=str(remote.work))
    return remote._check(res)


def _status_file(remote: Remote) -> Path:
    return remote.ops_dir / "schedule" / "status.json"


def _rewrite_status(remote: Remote, **fields: object) -> None:
    """Move the recorded times into the past (as if the server had been silent since)."""
    path = _status_file(remote)
    data = json.loads(path.read_text())
    data.update(fields)
    with path.open("r+") as fh:  # in place: the server user keeps owning it
        fh.truncate()
        fh.write(json.dumps(data))


@pytest.fixture
def unscheduled(provisioned: Remote) -> Iterator[Remote]:
    yield provisioned
    _schedule(provisioned, "remove")


def _nothing_installed(remote: Remote) -> None:
    assert BEGIN not in _crontab(remote)
    assert not (remote.ops_dir / "schedule" / "schedule.json").exists()


@pytest.mark.sshd
@pytest.mark.postgres
def test_install_refuses_a_backup_directory_the_server_user_cannot_write(
    unscheduled: Remote, tmp_path: Path,
) -> None:
    remote = unscheduled
    closed = tmp_path / "root-only"
    closed.mkdir(mode=0o755)  # owned by root: the login user can read, not write
    os.chmod(tmp_path, 0o755)
    with running_cron_daemon():
        res = _schedule(remote, "install", REPO=str(closed))
    assert res.returncode == 3, res.stdout + res.stderr
    user = remote.state.login_user
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: The scheduled backup could not run: {user} cannot write to the backup "
        f"directory {closed} on this server (Permission denied); create it for {user} "
        f"(sudo install -d -o {user} -m 0700 {closed}) or choose another REPO.")
    _nothing_installed(remote)


@pytest.mark.sshd
@pytest.mark.postgres
def test_install_refuses_a_repository_it_cannot_reach(unscheduled: Remote) -> None:
    remote = unscheduled
    port = free_port()  # nothing listens there
    with running_cron_daemon():
        res = _schedule(remote, "install", REPO="s3://nowhere/backups",
                        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="k",
                        AWS_SECRET_ACCESS_KEY="s3cr3t-key-value", AWS_REGION="us-east-1")
    assert res.returncode == 12, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: The scheduled backup could not run: the repository "
                           "s3://nowhere/backups cannot be listed from this server"), last
    assert "s3cr3t-key-value" not in res.stdout + res.stderr
    _nothing_installed(remote)


@pytest.mark.sshd
@pytest.mark.postgres
def test_status_is_critical_while_cron_is_stopped_ok_once_a_run_worked_and_critical_after_a_failure(
    unscheduled: Remote, tmp_path: Path,
) -> None:
    remote = unscheduled
    _status_file(remote).unlink(missing_ok=True)  # a server where no run was ever recorded
    repo = remote.home / "health-backups"
    # no cron daemon: installed, but the install says nothing will start it (exit 3)
    res = _schedule(remote, "install", REPO=str(repo))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "the cron daemon is not running, so nothing will start the runs" in res.stderr
    assert BEGIN in _crontab(remote)
    res = _schedule(remote, "status")
    assert res.returncode == CRITICAL, res.stdout + res.stderr
    assert res.stdout.startswith("SCHEDULE CRITICAL - on "), res.stdout
    assert "the cron daemon is not running" in res.stdout.splitlines()[0]

    with running_cron_daemon():
        res = _schedule(remote, "status")
        assert res.returncode == OK, res.stdout + res.stderr
        assert res.stdout.startswith("SCHEDULE OK - ") and "last run  never" in res.stdout

        res = remote.make("schedule-run-ops")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "ran now: ok: " in res.stdout
        backups = [p.name for p in repo.iterdir() if p.name.endswith(".mmops")]
        assert len(backups) == 1
        res = _schedule(remote, "status")
        assert res.returncode == OK, res.stdout + res.stderr
        assert f"result    ok: {backups[0]}" in res.stdout

        # the server user loses write access: the next run fails, and status says so
        os.chown(repo, 0, 0)
        repo.chmod(0o755)
        try:
            res = _schedule(remote, "run-now")
            assert res.returncode not in (0, 2), res.stdout + res.stderr
            assert "ran now and failed: " in res.stderr and "Permission denied" in res.stderr
            res = _schedule(remote, "status")
            assert res.returncode == CRITICAL, res.stdout + res.stderr
            first = res.stdout.splitlines()[0]
            assert first.startswith("SCHEDULE CRITICAL - on ") and "the last run (" in first
            assert ") failed: " in first and "Permission denied" in first
            res = remote.make("schedule-status")
            assert res.returncode != 0  # make's own 2 whatever the plugin code
        finally:
            os.chown(repo, remote.home.stat().st_uid, remote.home.stat().st_gid)
            repo.chmod(0o700)

    # and a failed run with the daemon stopped: both in the one sentence
    res = _schedule(remote, "status", "--json")
    assert res.returncode == CRITICAL
    health = json.loads(res.stdout)["health"]
    assert health["status"] == "CRITICAL" and len(health["problems"]) == 2
    assert res.stderr.startswith("error: SCHEDULE CRITICAL - ")  # what a fleet row shows


@pytest.mark.sshd
@pytest.mark.postgres
def test_status_warns_of_one_missed_run_and_is_critical_after_two(unscheduled: Remote) -> None:
    remote = unscheduled
    repo = remote.home / "overdue-backups"
    with running_cron_daemon():
        res = _schedule(remote, "install", REPO=str(repo), CALENDAR="*-*-* 02:00:00 UTC")
        assert res.returncode == 0, res.stdout + res.stderr
        res = _schedule(remote, "run-now")
        assert res.returncode == 0, res.stdout + res.stderr
        now = dt.datetime.now(dt.timezone.utc)
        before = (now - dt.timedelta(hours=30)).isoformat(timespec="seconds")
        _rewrite_status(remote, installed_at=(now - dt.timedelta(days=9)).isoformat(),
                        started=before, finished=before)
        res = _schedule(remote, "status")
        assert res.returncode == WARNING, res.stdout + res.stderr
        first = res.stdout.splitlines()[0]
        assert first.startswith("SCHEDULE WARNING - on ") and "overdue: no run has started " \
            "for 1d6h" in first and "1 scheduled run missed" in first, first
        long_ago = (now - dt.timedelta(days=3, hours=2)).isoformat(timespec="seconds")
        _rewrite_status(remote, started=long_ago, finished=long_ago)
        res = _schedule(remote, "status")
        assert res.returncode == CRITICAL, res.stdout + res.stderr
        assert "3 scheduled runs missed" in res.stdout.splitlines()[0]


@pytest.mark.sshd
@pytest.mark.postgres
def test_status_that_cannot_be_read_is_unknown_not_critical(provisioned: Remote) -> None:
    res = _schedule(provisioned, "status", HOST=f"nobody@127.0.0.1:{free_port()}")
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stdout.startswith("SCHEDULE UNKNOWN - on nobody@127.0.0.1:")
    assert "the schedule's status could not be read: " in res.stdout
