"""Fleet runs against real hosts (three sshd + one unreachable alias, tests/fleet/conftest.py):
the same single-host commands on every host, a failure kept to its host, one summary table,
bounded parallelism, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.cron_daemon import running_cron_daemon

from .conftest import MMOPS, FleetHosts

pytestmark = [pytest.mark.postgres, pytest.mark.sshd]


def _row(table: str, name: str) -> str:
    """The summary table's line for host ``name``."""
    lines = [line for line in table.splitlines() if re.match(rf"\s*{re.escape(name)}\s", line)]
    assert len(lines) == 1, table
    return lines[0]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """How many of the intervals were open at the same moment, at most (a sweep)."""
    events = sorted([(s, 1) for s, _e in intervals] + [(e, -1) for _s, e in intervals],
                    key=lambda ev: (ev[0], ev[1]))
    now = peak = 0
    for _t, step in events:
        now += step
        peak = max(peak, now)
    return peak


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_setup_provisions_every_reachable_host_and_reports_the_unreachable_one(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str]
) -> None:
    res = fleet_setup
    assert res.returncode == 2, res.stdout + res.stderr  # make's code: one host failed
    assert "mmops fleet setup" in res.stdout  # the target dispatched to the fleet command
    for name in ("alpha", "bravo", "charlie"):
        row = _row(res.stdout, name)
        assert " ok " in row and "agent" in row, row
        record = json.loads((fleet_hosts.ops_dir(name) / "agent.json").read_text())
        assert record["hash"]  # each host's own OPS_DIR holds the installed agent
    down = _row(res.stdout, "down")
    assert "failed (10)" in down, down
    assert "3 ok, 1 failed" in res.stdout
    assert "error: 1 of 4 hosts failed (down)" in res.stderr
    # every host's output, prefixed, and each host's log file (0600 in a 0700 dir)
    logs = fleet_hosts.base / "setup-logs"
    assert _mode(logs) == 0o700
    for name in ("alpha", "bravo", "charlie", "down"):
        assert f"[{name}] started: mmops remote setup --json" in res.stderr
        assert _mode(logs / f"{name}.log") == 0o600
    assert '"action"' in (logs / "alpha.log").read_text()


def test_backup_runs_on_every_host_keeps_failures_apart_and_exits_non_zero(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    res = fleet_hosts.run("backup", "--hosts", str(fleet_hosts.standard_inventory()),
                          "--parallel", "2", "--log-dir", str(tmp_path / "logs"),
                          BACKUP_DIR=str(backups))
    print(res.stdout)
    assert res.returncode == 1, res.stdout + res.stderr
    # one summary table: host, result, size, duration, detail
    header = next(line for line in res.stdout.splitlines() if "result" in line)
    assert header.split() == ["host", "result", "size", "duration", "detail"]
    for name in ("alpha", "bravo"):
        row = _row(res.stdout, name)
        files = sorted((backups / name).glob("*.mmops"))
        assert len(files) == 1, row
        assert " ok " in row and re.search(r"\d+(\.\d)? KiB", row) and re.search(r"\d\.\ds", row)
        assert row.split()[-3:] == [files[0].name.split("-")[0], "→", str(files[0])], row
        assert _mode(files[0]) == 0o600
        verify = subprocess.run([MMOPS, "verify", str(files[0])], capture_output=True,
                                text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    charlie = _row(res.stdout, "charlie")
    assert "failed (3)" in charlie and "markdown-manager.env" in charlie, charlie
    assert not list((backups / "charlie").glob("*.mmops"))
    assert "failed (10)" in _row(res.stdout, "down")
    assert res.stderr.splitlines()[-1].startswith("error: 2 of 4 hosts failed (charlie, down);")
    # the failing host's own error sentence is in its log too, and no remote temp dir is left
    assert "error:" in (tmp_path / "logs" / "charlie.log").read_text()
    for name in ("alpha", "bravo", "charlie"):
        tmp = fleet_hosts.ops_dir(name) / "tmp"
        assert not tmp.is_dir() or list(tmp.iterdir()) == []


@pytest.mark.parametrize("parallel", [1, 2])
def test_parallelism_is_bounded_by_the_overlap_of_the_hosts_runs(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str], tmp_path: Path,
    parallel: int,
) -> None:
    inv = fleet_hosts.inventory(
        "".join(f'[hosts.{n}]\nhost = "fleet-{n}"\nenv_file = "{fleet_hosts.env_file(n)}"\n'
                for n in ("alpha", "bravo", "charlie")))
    res = fleet_hosts.run("backup", "--hosts", str(inv), "--parallel", str(parallel), "--json",
                          "--quiet", "--log-dir", str(tmp_path / "logs"),
                          BACKUP_DIR=str(tmp_path / "backups"))
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads(res.stdout)
    hosts = summary["hosts"]
    assert [h["result"] for h in hosts] == ["ok"] * 3
    intervals = [(h["started_at"], h["finished_at"]) for h in hosts]
    # at most `parallel` hosts' commands were running at any moment, and that many were
    assert _max_overlap(intervals) == parallel, intervals


def test_two_entries_on_one_server_account_take_turns_while_others_run_alongside(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    """Two apps on one server (same login, same OPS_DIR, one agent venv): never at once."""
    f = fleet_hosts
    inv = f.inventory(
        f'[hosts.alpha]\nhost = "fleet-alpha"\nenv_file = "{f.env_file("alpha")}"\n'
        f'[hosts.alpha-pg]\nhost = "fleet-alpha"\nenv_file = "{f.other_env_file("alpha")}"\n'
        f'[hosts.bravo]\nhost = "fleet-bravo"\nenv_file = "{f.env_file("bravo")}"\n',
        name="two-apps.toml")
    res = f.run("backup", "--hosts", str(inv), "--parallel", "3", "--json", "--quiet",
                "--log-dir", str(tmp_path / "logs"), BACKUP_DIR=str(tmp_path / "backups"))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = json.loads(res.stdout)["hosts"]
    hosts = {h["name"]: (h["started_at"], h["finished_at"]) for h in rows}
    assert _max_overlap([hosts["alpha"], hosts["alpha-pg"]]) == 1, hosts
    assert _max_overlap(list(hosts.values())) == 2, hosts  # bravo ran alongside
    assert len(list((tmp_path / "backups" / "alpha").glob("markdown_manager-*.mmops"))) == 1
    assert len(list((tmp_path / "backups" / "alpha-pg").glob("postgres-*.mmops"))) == 1


def _hold_lock(remote: Any, table: str, held: threading.Event, release: threading.Event) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(**remote.url.connect_kwargs())
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                held.set()
                while not release.is_set():
                    await asyncio.sleep(0.05)
        finally:
            await conn.close()

    asyncio.run(main())


async def _waiting_backups(remote: Any) -> int:
    conn = await asyncpg.connect(**remote.url.connect_kwargs())
    try:
        return int(await conn.fetchval(
            # One per backup: its leader session (its pg_dump waits for the same lock too).
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE c.relname = 'documents' AND NOT l.granted "
            "AND a.application_name = 'mmops backup'"))
    finally:
        await conn.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_cleanly_with_a_summary_of_what_finished(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str], tmp_path: Path,
    signum: signal.Signals,
) -> None:
    """alpha backs up another database and finishes; bravo and charlie wait for a lock this
    test holds on the app's `documents` when Ctrl-C comes; down never starts (two at once)."""
    f = fleet_hosts
    inv = f.inventory(
        f'[hosts.alpha]\nhost = "fleet-alpha"\nenv_file = "{f.other_env_file("alpha")}"\n'
        f'[hosts.bravo]\nhost = "fleet-bravo"\nenv_file = "{f.env_file("bravo")}"\n'
        f'[hosts.charlie]\nhost = "fleet-charlie"\nenv_file = "{f.env_file("charlie")}"\n'
        '[hosts.down]\nhost = "fleet-down"\n')
    held, release = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(f.remote, "documents", held, release))
    locker.start()
    try:
        assert held.wait(30)
        proc = subprocess.Popen(
            [MMOPS, "fleet", "backup", "--hosts", str(inv), "--parallel", "2",
             "--log-dir", str(tmp_path / "logs")],
            env=dict(f.env, BACKUP_DIR=str(tmp_path / "backups"), LOCK_TIMEOUT="120"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(f.base))
        deadline = time.monotonic() + 240
        while asyncio.run(_waiting_backups(f.remote)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signum)  # SIGINT: what a terminal's Ctrl-C does to the fleet process
        out, err = proc.communicate(timeout=120)
        stop_took = time.monotonic() - started
    finally:
        release.set()
        locker.join(30)
    print(out, err)
    assert proc.returncode == 130, out + err
    assert stop_took < 60  # the hosts were stopped, not waited out (LOCK_TIMEOUT is 120 s)
    assert " ok " in _row(out, "alpha")
    assert len(list((tmp_path / "backups" / "alpha").glob("*.mmops"))) == 1
    for name in ("bravo", "charlie"):
        assert "interrupted" in _row(out, name)
        assert not list((tmp_path / "backups" / name).glob("*.mmops"))
        tmp = f.ops_dir(name) / "tmp"
        assert not tmp.is_dir() or list(tmp.iterdir()) == []  # each cleaned up on its server
    assert "not started" in _row(out, "down")
    assert not (tmp_path / "logs" / "down.log").exists()
    assert f"[fleet] {signum.name}: no new host starts" in err
    assert err.splitlines()[-1] == (
        f"error: Interrupted: 1 host(s) finished, 2 interrupted, 1 not started; each host's log "
        f"in {tmp_path / 'logs'} says what its command did.")
    # no agent process is left behind on any host
    ps = subprocess.run(["ps", "-eo", "user:32,args"], capture_output=True, text=True).stdout
    for name in ("bravo", "charlie"):
        assert not [line for line in ps.splitlines()
                    if line.startswith(f.servers[name].user) and "ops.agent" in line]


def test_schedule_and_schedule_status_through_make_on_every_host(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    f = fleet_hosts
    inv = f.inventory(
        f'[hosts.alpha]\nhost = "fleet-alpha"\nenv_file = "{f.env_file("alpha")}"\n'
        f'[hosts.bravo]\nhost = "fleet-bravo"\nenv_file = "{f.env_file("bravo")}"\n'
        f'repo = "{f.home("bravo")}/own-backups"\n'
        '[hosts.down]\nhost = "fleet-down"\n', name="schedule.toml")
    repo = "/var/tmp/mmops-fleet-schedule"
    # Install checks that a scheduler would start the runs: a cron daemon of the test's own.
    with running_cron_daemon():
        res = f.make("schedule-ops", HOSTS=str(inv), REPO=repo, SCHEDULER="cron",
                     CALENDAR="*-*-* 03:30:00 UTC", FLEET_LOG_DIR=str(tmp_path / "install"))
        print(res.stdout, res.stderr)
        assert "mmops fleet schedule" in res.stdout
        assert "cron" in _row(res.stdout, "alpha") and " ok " in _row(res.stdout, "alpha")
        assert " ok " in _row(res.stdout, "bravo")
        assert "failed (10)" in _row(res.stdout, "down")
        # each host's crontab runs its own backup into its own place: a shared REPO got /<name>
        for name, where in (("alpha", f"{repo}/alpha"),
                            ("bravo", f"{f.home('bravo')}/own-backups")):
            tab = subprocess.run(["crontab", "-l", "-u", f.servers[name].user], capture_output=True,
                                 text=True).stdout
            assert "scheduled-backup" in tab
            conf = (f.ops_dir(name) / "schedule").rglob("*")
            assert any(where in p.read_text() for p in conf
                       if p.is_file() and p.suffix != ".env"), name
        res = f.make("schedule-status", HOSTS=str(inv), FLEET_LOG_DIR=str(tmp_path / "status"))
        print(res.stdout, res.stderr)
        for name in ("alpha", "bravo"):
            row = _row(res.stdout, name)
            assert " ok " in row and "cron" in row and "never ran" in row, row
        # a status that cannot be read is UNKNOWN (3), with the reason
        assert "failed (3)" in _row(res.stdout, "down")
        assert "Cannot connect" in _row(res.stdout, "down")
        res = f.make("unschedule-ops", HOSTS=str(inv), FLEET_LOG_DIR=str(tmp_path / "remove"))
        for name in ("alpha", "bravo"):
            assert " ok " in _row(res.stdout, name)
            tab = subprocess.run(["crontab", "-l", "-u", f.servers[name].user], capture_output=True,
                                 text=True).stdout
            assert "scheduled-backup" not in tab


def _argv_holding(secret: str, hits: list[str], stop: threading.Event) -> None:
    """Sample every process's command line (laptop and, here, the servers' too) for ``secret``."""
    while not stop.is_set():
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if secret in text:
                hits.append(text)
        time.sleep(0.02)


@pytest.mark.storage
def test_a_shared_s3_repo_gets_one_prefix_per_host_and_its_keys_stay_off_every_command_line(
    fleet_hosts: FleetHosts, fleet_setup: subprocess.CompletedProcess[str], tmp_path: Path,
    seaweed: Any, s3_bucket: str,
) -> None:
    f = fleet_hosts
    inv = f.inventory(
        f'repo = "s3://{s3_bucket}/markdown"\nkeep = "last=3"\n\n'
        f'[hosts.alpha]\nhost = "fleet-alpha"\nenv_file = "{f.env_file("alpha")}"\n'
        f'[hosts.bravo]\nhost = "fleet-bravo"\nenv_file = "{f.env_file("bravo")}"\n',
        name="s3.toml")
    storage = seaweed.environ()
    secret = storage["AWS_SECRET_ACCESS_KEY"]
    hits: list[str] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_argv_holding, args=(secret, hits, stop))
    sampler.start()
    try:
        res = f.run("backup", "--hosts", str(inv), "--log-dir", str(tmp_path / "logs"),
                    BACKUP_DIR=str(tmp_path / "backups"), **storage)
    finally:
        stop.set()
        sampler.join()
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    keys = sorted(o["Key"] for o in seaweed.client().list_objects_v2(
        Bucket=s3_bucket).get("Contents", []))
    for name in ("alpha", "bravo"):
        mine = [k for k in keys if k.startswith(f"markdown/{name}/") and k.endswith(".mmops")]
        assert len(mine) == 1, keys
        assert f"s3://{s3_bucket}/{mine[0]}" in _row(res.stdout, name)
        assert not (tmp_path / "backups" / name).exists() or not list(
            (tmp_path / "backups" / name).glob("*.mmops"))  # stored there, not pulled here
    assert hits == []
    logs = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert secret not in res.stdout + res.stderr + logs
