"""The schedule's pure parts: systemd units (checked by systemd-analyze), calendars in cron's
terms, the crontab block, the scheduler choice."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.errors import ConfigError, UsageError
from ops.schedule import host
from ops.schedule.crontab import BEGIN, END, has_block, render_block, with_block, without_block
from ops.schedule.spec import (
    CronTime,
    ScheduleRequest,
    calendar_to_cron,
    check_test_restore,
    next_cron_run,
)
from ops.schedule.units import TEST_RESTORE, render_service, render_timer, scheduled_command

REQUEST = ScheduleRequest(repo="/srv/mmops backups", keep="daily=7 weekly=4 monthly=12",
                          env_file="/etc/markdown-manager.env")


def _write_units(tmp_path: Path, *, system: bool) -> tuple[Path, Path]:
    ops_dir = tmp_path / "ops"
    (ops_dir / "venv" / "bin").mkdir(parents=True)
    (ops_dir / "venv" / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    service = tmp_path / "mmops-backup.service"
    timer = tmp_path / "mmops-backup.timer"
    service.write_text(render_service(REQUEST, ops_dir=str(ops_dir), system=system,
                                      user="root", group="root"))
    timer.write_text(render_timer(REQUEST))
    return service, timer


@pytest.mark.parametrize("system", [True, False], ids=["system", "user"])
def test_the_units_pass_systemd_analyze_verify_without_a_warning(tmp_path, system) -> None:
    service, timer = _write_units(tmp_path, system=system)
    args = [] if system else ["--user"]
    res = subprocess.run(["systemd-analyze", "verify", *args, service.name, timer.name],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert (res.returncode, res.stderr) == (0, "")


def test_the_service_is_hardened_and_its_exposure_is_reported(tmp_path, capsys) -> None:
    service, _timer = _write_units(tmp_path, system=True)
    text = service.read_text()
    for line in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict",
                 "ProtectHome=read-only", "CapabilityBoundingSet=", "UMask=0077",
                 f'ReadWritePaths={tmp_path / "ops"} -"/srv/mmops backups"'):
        assert line in text.splitlines(), line
    res = subprocess.run(["systemd-analyze", "security", "--offline=yes", service.name],
                         cwd=tmp_path, capture_output=True, text=True)
    m = re.search(r"Overall exposure level for mmops-backup.service: (\d+\.\d+) (\w+)",
                  res.stdout)
    assert m is not None, res.stdout + res.stderr
    with capsys.disabled():
        print(f"\nsystemd-analyze security --offline=yes: exposure {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 3.0 and m.group(2) == "OK"


def test_the_timer_is_persistent_with_a_randomized_delay_and_a_valid_calendar() -> None:
    timer = render_timer(REQUEST).splitlines()
    assert {"Persistent=true", "RandomizedDelaySec=15min", "OnCalendar=*-*-* 02:00:00 UTC",
            "WantedBy=timers.target"} <= set(timer)
    for calendar in (REQUEST.calendar, "Sun *-*-* 04:00:00 UTC"):
        res = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True,
                             text=True)
        assert res.returncode == 0 and "Next elapse:" in res.stdout


def test_units_and_crontab_hold_no_secret_only_the_command() -> None:
    service = render_service(REQUEST, ops_dir="/home/d/ops", system=True, user="d")
    assert "ExecStart=/home/d/ops/venv/bin/python -m ops.agent scheduled-backup --ops-dir " \
           "/home/d/ops" in service
    assert "AWS_" not in service and "DATABASE_URL" not in service
    assert "LoadCredential=app.env:/etc/markdown-manager.env" in service


@pytest.mark.parametrize(("calendar", "offset", "expr"), [
    ("*-*-* 02:00:00 UTC", 0, "0 2 * * *"),
    ("daily", 0, "0 0 * * *"),
    ("hourly", 0, "0 * * * *"),
    ("Sun *-*-* 04:30:00 UTC", 0, "30 4 * * 0"),
    ("Mon,Thu *-*-* 23:15 UTC", 120, "15 1 * * 2,5"),  # UTC+2: next day, weekdays shift too
    ("*-*-* 00:10:00 UTC", -60, "10 23 * * *"),
    ("*-*-* 02:00", 120, "0 2 * * *"),  # no zone: the server's local time as given
])
def test_calendars_in_cron_terms(calendar: str, offset: int, expr: str) -> None:
    assert calendar_to_cron(calendar, utc_offset_minutes=offset).expression() == expr


@pytest.mark.parametrize("calendar", ["*-*-01 02:00", "Mon..Fri 02:00", "*-*-* 02:00 CET",
                                      "Funday *-*-* 02:00", "*-*-* 25:00"])
def test_calendars_cron_cannot_express_are_refused(calendar: str) -> None:
    with pytest.raises(UsageError):
        calendar_to_cron(calendar)


def test_next_cron_run() -> None:
    at = dt.datetime(2026, 12, 2, 3, 0)  # a Wednesday
    assert next_cron_run(CronTime(0, 2, ()), at) == dt.datetime(2026, 12, 3, 2, 0)
    assert next_cron_run(CronTime(30, 4, (0,)), at) == dt.datetime(2026, 12, 6, 4, 30)
    assert next_cron_run(CronTime(5, None, ()), at) == dt.datetime(2026, 12, 2, 3, 5)


def test_the_crontab_block_is_added_replaced_and_removed_keeping_other_lines() -> None:
    mine = "MAILTO=ops@example.com\n15 * * * * /usr/local/bin/other-job\n"
    block = render_block([(CronTime(0, 2, ()), scheduled_command("/home/d/ops dir"))],
                         "/home/d/ops dir/schedule/cron.log")
    assert block.splitlines()[1] == (
        "0 2 * * * '/home/d/ops dir/venv/bin/python' -m ops.agent scheduled-backup --ops-dir "
        "'/home/d/ops dir' >> '/home/d/ops dir/schedule/cron.log' 2>&1")
    once = with_block(mine, block)
    twice = with_block(once, block)
    assert once == twice == mine + block and has_block(once)
    assert without_block(twice) == mine and not has_block(mine)
    assert BEGIN in block and END in block


def test_a_percent_sign_is_escaped_for_cron() -> None:
    block = render_block([(CronTime(0, 2, ()), ["/opt/100%/python"])], "/tmp/log")
    assert "/opt/100\\%/python" in block


def test_neither_systemd_nor_cron_is_one_sentence_naming_the_package(monkeypatch) -> None:
    monkeypatch.setattr(host, "systemd_running", lambda: False)
    monkeypatch.setattr(host.shutil, "which", lambda _name: None)
    with pytest.raises(ConfigError, match=r"install cron \(apt-get install cron\)"):
        host.choose_scheduler()


def test_systemd_is_detected_by_its_runtime_dir_never_by_unit_dirs(monkeypatch, tmp_path) -> None:
    assert host.systemd_running() is Path("/run/systemd/system").is_dir()
    monkeypatch.setattr(host, "systemd_running", lambda: True)
    monkeypatch.setattr(host, "sudo_works", lambda: False)
    assert host.choose_scheduler() == "systemd-user"
    monkeypatch.setattr(host, "sudo_works", lambda: True)
    assert host.choose_scheduler() == "systemd-system"


WITH_TEST = ScheduleRequest(repo="/srv/mmops backups", env_file="/etc/markdown-manager.env",
                            test_restore="Sun *-*-* 04:00:00 UTC")


@pytest.mark.parametrize("system", [True, False], ids=["system", "user"])
def test_the_test_restore_units_pass_systemd_analyze_verify(tmp_path, system) -> None:
    ops_dir = tmp_path / "ops"
    (ops_dir / "venv" / "bin").mkdir(parents=True)
    (ops_dir / "venv" / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    service = tmp_path / "mmops-test-restore.service"
    timer = tmp_path / "mmops-test-restore.timer"
    service.write_text(render_service(WITH_TEST, ops_dir=str(ops_dir), system=system,
                                      user="root", group="root", job=TEST_RESTORE))
    timer.write_text(render_timer(WITH_TEST, TEST_RESTORE))
    assert f"ExecStart={ops_dir}/venv/bin/python -m ops.agent scheduled-test-restore " \
           f"--ops-dir {ops_dir}" in service.read_text().splitlines()
    assert "OnCalendar=Sun *-*-* 04:00:00 UTC" in timer.read_text().splitlines()
    assert "Unit=mmops-test-restore.service" in timer.read_text().splitlines()
    args = [] if system else ["--user"]
    res = subprocess.run(["systemd-analyze", "verify", *args, service.name, timer.name],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert (res.returncode, res.stderr) == (0, "")
    res = subprocess.run(["systemd-analyze", "calendar", "Sun *-*-* 04:00:00 UTC"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "Next elapse:" in res.stdout


def test_the_crontab_block_holds_the_test_restore_line_after_the_backups() -> None:
    entries = [(calendar_to_cron(WITH_TEST.calendar), scheduled_command("/o")),
               (calendar_to_cron("Sun *-*-* 04:00:00 UTC"), scheduled_command("/o", TEST_RESTORE))]
    lines = render_block(entries, "/o/schedule/cron.log").splitlines()
    assert lines[1].startswith("0 2 * * * /o/venv/bin/python -m ops.agent scheduled-backup ")
    assert lines[2] == ("0 4 * * 0 /o/venv/bin/python -m ops.agent scheduled-test-restore "
                        "--ops-dir /o >> /o/schedule/cron.log 2>&1")
    assert (lines[0], lines[3]) == (BEGIN, END)


def test_a_test_restore_of_an_encrypted_repository_is_refused_saying_where_it_runs() -> None:
    check_test_restore(WITH_TEST)  # unencrypted: fine
    encrypted = ScheduleRequest(repo="s3://b/p", encrypt_to="age1xyz",
                                test_restore="Sun *-*-* 04:00:00 UTC")
    with pytest.raises(UsageError) as err:
        check_test_restore(encrypted)
    text = str(err.value)
    assert text.startswith("TEST_RESTORE cannot run on the server: its backups are encrypted")
    assert "deploy/github/database-backup.yml" in text and "--identity KEY" in text
    assert text.count(". ") == 0  # one sentence


def test_user_units_for_backup_and_test_restore_are_installed_enabled_and_removed(
    monkeypatch, tmp_path,
) -> None:
    """The systemd-user path without a running systemd: systemctl is recorded (a fake), the
    calendars are checked by the real systemd-analyze, the unit files are real files."""
    from ops.process import CommandResult, run_command

    calls: list[tuple[str, ...]] = []
    unit_dir = tmp_path / "units"
    monkeypatch.setattr(host, "_user_unit_dir", lambda: unit_dir)
    monkeypatch.setattr(host, "_systemctl",
                        lambda system, *args, check=True: calls.append(args) or "")

    def commands(argv, **kw):
        if argv[0] == "loginctl":
            return CommandResult(list(argv), 0, "yes\n", "")
        return run_command(argv, **kw)

    monkeypatch.setattr(host, "run_command", commands)
    ops_dir = tmp_path / "ops"
    env_file = tmp_path / "app.env"
    env_file.write_text("DATABASE_URL=postgresql://u@h/db\n")
    request = ScheduleRequest(repo="/srv/b", env_file=str(env_file), scheduler="systemd-user",
                              test_restore="Sun *-*-* 04:00:00 UTC")
    secret = "https://hooks.example.com/T0KEN-in-a-url"
    installed = host.install(ops_dir, request, {}, notify=secret)
    assert sorted(p.name for p in unit_dir.iterdir()) == [
        "mmops-backup.service", "mmops-backup.timer",
        "mmops-test-restore.service", "mmops-test-restore.timer"]
    assert ("enable", "--now", "mmops-backup.timer") in calls
    assert ("enable", "--now", "mmops-test-restore.timer") in calls
    assert not [p for p in unit_dir.iterdir() if "T0KEN" in p.read_text()]
    assert "T0KEN" not in (ops_dir / "schedule" / "schedule.json").read_text()
    assert (ops_dir / "schedule" / "notify.env").stat().st_mode & 0o777 == 0o600
    assert installed.scheduler == "systemd-user"

    # reinstalled without TEST_RESTORE: its units go
    host.install(ops_dir, ScheduleRequest(repo="/srv/b", env_file=str(env_file),
                                          scheduler="systemd-user"), {})
    assert sorted(p.name for p in unit_dir.iterdir()) == ["mmops-backup.service",
                                                          "mmops-backup.timer"]
    assert not (ops_dir / "schedule" / "notify.env").exists()
    removed = host.remove(ops_dir)
    assert list(unit_dir.iterdir()) == [] and str(unit_dir / "mmops-backup.timer") in removed
