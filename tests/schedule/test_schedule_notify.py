"""NOTIFY and TEST_RESTORE on a server without systemd (the sandbox: cron), through the real
sshd and agent, with a real HTTP receiver on 127.0.0.1 standing in for the alerting endpoint:
the scheduled backup's success, failure and stall arrive as JSON; the scheduled test restore
runs on the server and its result arrives; the token in a notification URL is never in
output, logs, the crontab, schedule.json or any process's argv; an unreachable target is one
warning sentence and the backup stays successful (exit 0); an encrypted repository's test
restore is refused on the server, saying where it runs instead."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.schedule.crontab import BEGIN, END
from tests.notify.receiver import Receiver, closed_port
from tests.remote_sandbox import MMOPS, Remote
from tests.schedule.test_schedule_cron import RUNUSER, _crontab, _next_second, _status, _stopped

pytestmark = [pytest.mark.sshd, pytest.mark.postgres]
TOKEN = "T0kenS3cretHook9876abcd"


@pytest.fixture
def scheduled(provisioned: Remote, cron_daemon: None) -> Iterator[Remote]:
    yield provisioned
    provisioned.make("unschedule-ops")


def _lines(remote: Remote) -> list[str]:
    lines = _crontab(remote).splitlines()
    assert BEGIN in lines and END in lines, lines
    return lines[lines.index(BEGIN) + 1: lines.index(END)]


def _cmdlines_with(needle: str) -> list[str]:
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in text:
            found.append(f"{path.parent.name}: {text}")
    return found


def _run_watching_argv(remote: Remote, line: str, timeout: float = 300
                       ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The crontab line's command run like cron, sampling every process's argv for the token
    while it runs."""
    command = line.split(None, 5)[5].replace("\\%", "%")
    user = remote.state.login_user
    env = {"HOME": str(remote.home), "LOGNAME": user, "USER": user, "SHELL": "/bin/sh",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([RUNUSER, "-u", user, "--", "/bin/sh", "-c", command], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    leaked: list[str] = []
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        leaked += _cmdlines_with(TOKEN)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), leaked


def _make_watching_argv(remote: Remote, target: str, **extra: str
                        ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``make TARGET`` with Make variables in the environment (as users export NOTIFY),
    sampling every process's argv — make, mmops, ssh, sshd, the agent — for the token."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(["make", "--no-print-directory", "-C", str(root), target],
                            env=remote.cmd_env(**extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    leaked: list[str] = []
    while proc.poll() is None:
        leaked += _cmdlines_with(TOKEN)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    remote.outputs.append(out + err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), leaked


def _mmops(remote: Remote, *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([MMOPS, *args], env=remote.cmd_env(), capture_output=True, text=True,
                         timeout=300, cwd=str(remote.work))
    remote.outputs.append(res.stdout + res.stderr)
    return res


def _log(remote: Remote) -> str:
    return (remote.ops_dir / "schedule" / "cron.log").read_text()


def _log_messages(remote: Remote) -> list[str]:
    """The agent's log lines in cron.log (JSON lines)."""
    out = []
    for line in _log(remote).splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("event") == "log":
            out.append(str(msg.get("message")))
    return out


def test_scheduled_backup_and_test_restore_notify_a_webhook_and_apprise(
    scheduled: Remote, tmp_path: Path,
) -> None:
    remote = scheduled
    receiver = Receiver()
    try:
        notify = (f"{receiver.url('/hook/' + TOKEN)} "
                  f"{receiver.url('/apprise/' + TOKEN, scheme='json')}")
        repo = remote.home / "notified-backups"
        res, leaked = _make_watching_argv(remote, "schedule-ops", REPO=str(repo), KEEP="last=3",
                                          NOTIFY=notify, TEST_RESTORE="Sun *-*-* 04:00:00 UTC")
        assert res.returncode == 0, res.stdout + res.stderr
        assert leaked == []
        assert f"notify    webhook http://127.0.0.1:{receiver.port}/…, JSON (json://…)" \
            in res.stdout
        assert "test restore  Sun *-*-* 04:00:00 UTC" in res.stdout
        notify_env = remote.ops_dir / "schedule" / "notify.env"
        assert notify_env.stat().st_mode & 0o777 == 0o600 and TOKEN in notify_env.read_text()
        backup_line, test_line = _lines(remote)
        assert " scheduled-backup " in backup_line
        assert test_line.startswith("0 4 * * 0 ") and " scheduled-test-restore " in test_line

        _next_second()
        ran, leaked = _run_watching_argv(remote, backup_line)
        assert ran.returncode == 0, _log(remote)[-2000:]
        assert leaked == []
        got = receiver.wait_for(2)
        hook = next(g for g in got if g.path == f"/hook/{TOKEN}")
        status = _status(remote)
        assert hook.body["event"] == "backup" and hook.body["result"] == "ok"
        assert hook.body["database"] == remote.state.database
        assert hook.body["message"] == status["message"]
        assert hook.body["details"]["backup"]["name"] == status["backup"]["name"]
        assert hook.body["details"]["backup"]["repository"] == str(repo)
        apprised = next(g for g in got if g.path == f"/apprise/{TOKEN}")
        assert apprised.body["type"] == "success"
        assert apprised.body["title"].startswith("Scheduled backup OK on ")
        assert [d["ok"] for d in status["notified"]] == [True, True]

        ran, leaked = _run_watching_argv(remote, test_line)
        assert ran.returncode == 0, _log(remote)[-3000:]
        assert leaked == []
        got = receiver.wait_for(4)
        tested = [g for g in got if g.path == f"/hook/{TOKEN}"][-1]
        assert tested.body["event"] == "test-restore" and tested.body["result"] == "ok", \
            tested.body
        report = tested.body["details"]["test_restore"]
        assert report["backup"] == status["backup"]["name"] and report["problems"] == []
        assert report["tables"] > 0 and report["target"].startswith("throwaway PostgreSQL")
        assert tested.body["message"].startswith(f"{report['backup']} restored and proved "
                                                 "identical: ")
        assert _status(remote)["test_restore"]["result"] == "ok"

        res = remote.make("schedule-status")
        assert res.returncode == 0, res.stderr
        assert "test restore  Sun *-*-* 04:00:00 UTC, next " in res.stdout
        assert "last test restore" in res.stdout and ": ok: " in res.stdout

        res = _mmops(remote, "schedule", "test-notify")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "delivered  JSON (json://…)" in res.stdout
        test_event = receiver.wait_for(6)[-2:]
        assert {g.body.get("event", g.body.get("type")) for g in test_event} <= {"test", "info"}

        texts = [res.stdout, _log(remote), _crontab(remote),
                 (remote.ops_dir / "schedule" / "schedule.json").read_text(),
                 (remote.ops_dir / "schedule" / "status.json").read_text(), *remote.outputs]
        assert not [t for t in texts if TOKEN in t]

        res = remote.make("unschedule-ops")
        assert res.returncode == 0 and not notify_env.exists()
        assert f"removed {notify_env}" in res.stdout
    finally:
        receiver.close()


def test_a_failing_backup_notifies_failure(scheduled: Remote) -> None:
    remote = scheduled
    receiver = Receiver()
    try:
        repo = remote.home / "b-fail"
        res = remote.make("schedule-ops", REPO=str(repo), NOTIFY=receiver.url(f"/h/{TOKEN}"))
        assert res.returncode == 0, res.stdout + res.stderr
        os.chown(repo, 0, 0)  # after the install: the server user can no longer write there
        repo.chmod(0o755)
        ran, _ = _run_watching_argv(remote, _lines(remote)[0])
        assert ran.returncode != 0
        (got,) = receiver.wait_for(1)
        status = _status(remote)
        assert status["result"] == "failed"
        assert got.body["event"] == "backup" and got.body["result"] == "failed"
        assert got.body["ok"] is False and got.body["message"] == status["message"]
        assert got.body["title"].startswith("Scheduled backup FAILED on ")
    finally:
        receiver.close()


def test_an_unreachable_target_is_a_warning_and_the_backup_stays_successful(
    scheduled: Remote,
) -> None:
    remote = scheduled
    port = closed_port()
    res = remote.make("schedule-ops", REPO=str(remote.home / "b-unreach"),
                      NOTIFY=f"http://127.0.0.1:{port}/{TOKEN}")
    assert res.returncode == 0, res.stdout + res.stderr
    ran, leaked = _run_watching_argv(remote, _lines(remote)[0])
    assert ran.returncode == 0, _log(remote)[-2000:]
    assert leaked == []
    sentence = (f"Notification not delivered: webhook http://127.0.0.1:{port}/… could not be "
                "reached (ConnectionError).")
    status = _status(remote)
    assert status["result"] == "ok" and status["notify_warning"] == sentence
    assert f"warning: {sentence}" in _log_messages(remote) and TOKEN not in _log(remote)
    res = remote.make("schedule-status")
    assert f"warning   {sentence}" in res.stdout and TOKEN not in res.stdout
    res = _mmops(remote, "schedule", "test-notify")  # sent from the server: fails, exit 14
    assert res.returncode == 14, res.stdout + res.stderr
    assert f"  FAILED     webhook http://127.0.0.1:{port}/…" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == f"error: {sentence}"
    assert TOKEN not in res.stdout + res.stderr


@pytest.mark.slow
def test_a_stalled_backup_is_aborted_and_notified(scheduled: Remote) -> None:
    remote = scheduled
    receiver = Receiver()
    try:
        res = remote.make("schedule-ops", REPO=str(remote.home / "b-stall"), STALL="0.1",
                          NOTIFY=receiver.url(f"/s/{TOKEN}"))
        assert res.returncode == 0, res.stdout + res.stderr
        with _stopped(remote.state.postgres_pid):
            ran, leaked = _run_watching_argv(remote, _lines(remote)[0], timeout=200)
        assert ran.returncode == 124 and leaked == []
        (got,) = receiver.wait_for(1)
        assert got.body["event"] == "backup" and got.body["result"] == "stalled"
        assert got.body["message"].startswith(
            "The scheduled backup made no progress for 0.1 minutes")
        assert got.body["title"].startswith("Scheduled backup STALLED (aborted) on ")
        assert _status(remote)["result"] == "stalled"
    finally:
        receiver.close()


def test_a_test_restore_of_an_encrypted_repository_is_refused_on_the_server(
    scheduled: Remote, tmp_path: Path,
) -> None:
    remote = scheduled
    recipient = subprocess.run([MMOPS, "key", "generate", "-o", str(tmp_path / "k.txt")],
                               capture_output=True, text=True, check=True).stdout.strip()
    res = remote.make("schedule-ops", REPO=str(remote.home / "b-enc"), ENCRYPT_TO=recipient,
                      TEST_RESTORE="Sun *-*-* 04:00:00 UTC")
    assert res.returncode == 2, res.stdout + res.stderr
    (error,) = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(
        "error: TEST_RESTORE cannot run on the server: its backups are encrypted")
    assert "deploy/github/database-backup.yml" in res.stderr
    assert BEGIN not in _crontab(remote)
    assert not (remote.ops_dir / "schedule" / "schedule.json").exists() or json.loads(
        (remote.ops_dir / "schedule" / "schedule.json").read_text()).get("encrypt_to") is None


def test_a_scheduled_test_restore_of_a_damaged_backup_fails_and_notifies_the_failure(
    scheduled: Remote,
) -> None:
    remote = scheduled
    receiver = Receiver()
    try:
        repo = remote.home / "b-damaged"
        res = remote.make("schedule-ops", REPO=str(repo), NOTIFY=receiver.url(f"/d/{TOKEN}"),
                          TEST_RESTORE="Sun *-*-* 04:00:00 UTC")
        assert res.returncode == 0, res.stdout + res.stderr
        backup_line, test_line = _lines(remote)
        assert _run_watching_argv(remote, backup_line)[0].returncode == 0, _log(remote)[-2000:]
        (backup,) = [p for p in repo.iterdir() if p.name.endswith(".mmops")]
        data = bytearray(backup.read_bytes())
        data[len(data) // 3] ^= 0x01  # one bit inside a compressed table member
        backup.write_bytes(bytes(data))

        ran, leaked = _run_watching_argv(remote, test_line)
        assert ran.returncode == 6 and leaked == []  # ArchiveError: the checksums disagree
        got = receiver.wait_for(2)[-1]
        tested = _status(remote)["test_restore"]
        assert tested["result"] == "failed" and tested["state"] == "idle"
        assert got.body["event"] == "test-restore" and got.body["result"] == "failed"
        assert got.body["message"] == tested["message"] and backup.name in tested["message"]
        assert _status(remote)["result"] == "ok"  # the backup's own result is untouched
        res = remote.make("schedule-status")
        assert "last test restore" in res.stdout and ": failed: " in res.stdout
    finally:
        receiver.close()


@pytest.mark.storage
def test_a_scheduled_test_restore_downloads_the_newest_backup_from_s3(
    scheduled: Remote, seaweed, s3_bucket: str,
) -> None:
    remote = scheduled
    receiver = Receiver()
    storage = seaweed.environ()
    try:
        res = remote.make("schedule-ops", REPO=f"s3://{s3_bucket}/tr", KEEP="last=2",
                          NOTIFY=receiver.url(f"/s3/{TOKEN}"),
                          TEST_RESTORE="Sun *-*-* 04:00:00 UTC", **storage)
        assert res.returncode == 0, res.stdout + res.stderr
        backup_line, test_line = _lines(remote)
        for _ in range(2):
            _next_second()
            assert _run_watching_argv(remote, backup_line)[0].returncode == 0, \
                _log(remote)[-2000:]
        newest = _status(remote)["backup"]["name"]
        ran, leaked = _run_watching_argv(remote, test_line)
        assert ran.returncode == 0, _log(remote)[-3000:]
        assert leaked == []
        got = receiver.wait_for(3)[-1]
        assert got.body["event"] == "test-restore" and got.body["result"] == "ok"
        assert got.body["details"]["test_restore"]["backup"] == newest
        assert remote.leftover_tmp() == []  # the download was removed with its staging dir
        assert storage["AWS_SECRET_ACCESS_KEY"] not in _log(remote)
    finally:
        receiver.close()
