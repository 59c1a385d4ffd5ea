"""Installing, removing and reading a schedule on the host the agent runs on.

Which scheduler: systemd when it is running (``/run/systemd/system`` exists — sd_booted(3)),
never guessed from unit directories; system units when ``sudo -n`` works, user units
otherwise; cron for the login user when systemd is not running; else one sentence naming the
package. Every command is an argument list through the one runner; no secret is in any.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..process import pid_alive, run_command
from .crontab import BEGIN, has_block, render_block, with_block, without_block
from .health import ScheduleFacts, evaluate, longest_gap
from .spec import (
    TEST_UNIT,
    UNIT,
    ScheduleRequest,
    calendar_to_cron,
    check_test_restore,
    next_cron_run,
)
from .state import (
    LOG,
    NOTIFY,
    SECRETS,
    load_config,
    read_status,
    save_config,
    schedule_dir,
    update_status,
    utcnow,
)
from .units import UNIT_OF, jobs_of, render_service, render_timer, scheduled_command

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


@dataclass(frozen=True)
class Installed:
    scheduler: str  # systemd-system | systemd-user | cron
    command: list[str]
    files: list[str]
    next_run: str | None
    notes: list[str] = field(default_factory=list)
    scheduler_problem: str = ""  # set when nothing would start the runs (see scheduler_state)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C.UTF-8"}
    for key in ("HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    if "XDG_RUNTIME_DIR" not in env and Path(f"/run/user/{os.getuid()}").is_dir():
        env["XDG_RUNTIME_DIR"] = f"/run/user/{os.getuid()}"
    env.update(extra or {})
    return env


def systemd_running() -> bool:
    """sd_booted(3): systemd is the running init exactly when /run/systemd/system exists."""
    return Path("/run/systemd/system").is_dir()


def sudo_works() -> bool:
    if shutil.which("sudo") is None:
        return False
    return run_command(["sudo", "-n", "true"], env=_env(), check=False, timeout=20).returncode == 0


def cron_available() -> bool:
    return shutil.which("crontab") is not None


def cron_daemon_running() -> bool:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("cron", "crond"):
                return True
        except OSError:
            continue
    return False


def choose_scheduler(wanted: str = "auto") -> str:
    if wanted != "auto":
        return wanted
    if systemd_running():
        return "systemd-system" if sudo_works() else "systemd-user"
    if cron_available():
        return "cron"
    raise ConfigError(
        "This server runs neither systemd nor cron, so nothing can run the backup on a "
        "schedule; install cron (apt-get install cron) or run the server under systemd."
    )


def login_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


# --- cron --------------------------------------------------------------------------------------

def _crontab_text() -> str:
    res = run_command(["crontab", "-l"], env=_env(), check=False)
    return res.stdout if res.returncode == 0 else ""  # "no crontab for USER" is exit 1


def _write_crontab(text: str) -> None:
    if text.strip():
        run_command(["crontab", "-"], env=_env(), input_text=text)
    else:
        run_command(["crontab", "-r"], env=_env(), check=False)


def _utc_offset_minutes() -> int:
    return int((time.localtime().tm_gmtoff or 0) // 60)


def _install_cron(request: ScheduleRequest, ops_dir: Path) -> Installed:
    offset = _utc_offset_minutes()
    entries = [(calendar_to_cron(calendar, utc_offset_minutes=offset),
                scheduled_command(str(ops_dir), job)) for job, calendar in jobs_of(request)]
    when = entries[0][0]
    log = str(schedule_dir(ops_dir) / LOG)
    _write_crontab(with_block(_crontab_text(), render_block(entries, log)))
    notes = [f"cron runs it for {login_user()} at '{when.expression()}' (server local time); "
             f"output goes to {log}"]
    if len(entries) > 1:
        notes.append(f"the test restore runs at '{entries[1][0].expression()}' (server local "
                     "time)")
    if _utc_offset_minutes() and time.daylight:
        notes.append("the server's local time has daylight saving: the UTC time shifts by an "
                      "hour twice a year (cron has no time zones)")
    if not cron_daemon_running():
        notes.append("the cron daemon is not running: start it (service cron start) or "
                      "nothing will run")
    return Installed("cron", entries[0][1], [f"crontab of {login_user()}"],
                     next_cron_run(when, dt.datetime.now()).isoformat(timespec="minutes"),
                     notes)


# --- systemd -----------------------------------------------------------------------------------

def _user_unit_dir() -> Path:
    return Path.home() / ".config" / "systemd" / "user"


def _systemctl(system: bool, *args: str, check: bool = True) -> str:
    argv = ["sudo", "-n", "systemctl", *args] if system else ["systemctl", "--user", *args]
    return run_command(argv, env=_env(), check=check, timeout=60).stdout


def _check_calendar(calendar: str) -> None:
    res = run_command(["systemd-analyze", "calendar", calendar], env=_env(), check=False)
    if res.returncode != 0:
        raise ConfigError(f"CALENDAR={calendar!r} is not a systemd calendar expression "
                          f"(systemd-analyze calendar: {res.stderr.strip()[-200:]}).")


def _unit_texts(request: ScheduleRequest, ops_dir: Path, *, system: bool
                ) -> list[tuple[str, str]]:
    """(file name, text) of every unit: the backup's service + timer, the test restore's."""
    user = login_user()
    group = _group_name(os.getgid())
    out = []
    for job, _calendar in jobs_of(request):
        unit = UNIT_OF[job]
        out.append((f"{unit}.service", render_service(request, ops_dir=str(ops_dir),
                                                      system=system, user=user, group=group,
                                                      job=job)))
        out.append((f"{unit}.timer", render_timer(request, job)))
    return out


def _install_systemd(request: ScheduleRequest, ops_dir: Path, *, system: bool) -> Installed:
    for _job, calendar in jobs_of(request):
        _check_calendar(calendar)
    user = login_user()
    units = _unit_texts(request, ops_dir, system=system)
    notes = []
    if not request.test_restore:  # a previous schedule's test restore goes
        _remove_units(system, [TEST_UNIT])
    if system:
        files = []
        with tempfile.TemporaryDirectory(prefix="mmops-units-") as tmp:
            for name, text in units:
                src = Path(tmp) / name
                src.write_text(text)
                dest = SYSTEM_UNIT_DIR / name
                run_command(["sudo", "-n", "install", "-m", "0644", "-o", "root", "-g", "root",
                             str(src), str(dest)], env=_env())
                files.append(str(dest))
    else:
        unit_dir = _user_unit_dir()
        unit_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for name, text in units:
            (unit_dir / name).write_text(text)
            files.append(str(unit_dir / name))
        linger = run_command(["loginctl", "show-user", user, "--property=Linger", "--value"],
                             env=_env(), check=False).stdout.strip()
        if linger != "yes":
            notes.append(f"lingering is off for {user}: user timers run only while {user} is "
                         f"logged in; run `sudo loginctl enable-linger {user}` once")
        if not os.access(request.env_file, os.R_OK):
            notes.append(f"{request.env_file} is not readable by {user} and a user unit "
                         "cannot use sudo (NoNewPrivileges): make it group-readable")
    _systemctl(system, "daemon-reload")
    for job, _calendar in jobs_of(request):
        _systemctl(system, "enable", "--now", f"{UNIT_OF[job]}.timer")
    return Installed("systemd-system" if system else "systemd-user",
                     scheduled_command(str(ops_dir)), files, _systemd_next(system), notes)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _systemd_next(system: bool, unit: str = UNIT) -> str | None:
    out = _systemctl(system, "show", f"{unit}.timer", "--property=NextElapseUSecRealtime",
                     "--value", check=False).strip()
    return out or None


def _remove_units(system: bool, units: list[str]) -> list[str]:
    removed = []
    for unit in units:
        paths = [(SYSTEM_UNIT_DIR if system else _user_unit_dir()) / f"{unit}.{kind}"
                 for kind in ("service", "timer")]
        if not any(p.exists() for p in paths):
            continue
        _systemctl(system, "disable", "--now", f"{unit}.timer", check=False)
        for path in paths:
            if system:
                run_command(["sudo", "-n", "rm", "-f", "--", str(path)], env=_env())
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed


# --- the three operations ------------------------------------------------------------------------

def install(ops_dir: Path, request: ScheduleRequest, storage_env: dict[str, str],
            notify: str = "") -> Installed:
    """Write the schedule's config and secrets (0600: storage keys, NOTIFY URLs), then
    install it with the scheduler this host has. A previous schedule (of any scheduler) is
    replaced. A test restore of an encrypted repository is refused here, before anything."""
    check_test_restore(request)
    scheduler = choose_scheduler(request.scheduler)
    if request.scheduler == "auto":
        from dataclasses import replace

        request = replace(request, scheduler=scheduler)
    with_previous = _installed_scheduler(ops_dir)
    if with_previous and with_previous != scheduler:
        remove(ops_dir)
    if scheduler not in ("cron", "systemd-system", "systemd-user"):
        raise ConfigError(f"Unknown scheduler {scheduler!r}; use auto, systemd-system, "
                          "systemd-user or cron.")
    save_config(ops_dir, request, storage_env, notify)
    if scheduler == "cron":
        installed = _install_cron(request, ops_dir)
    else:
        installed = _install_systemd(request, ops_dir, system=scheduler == "systemd-system")
    update_status(ops_dir, installed_at=utcnow())  # "overdue" counts from here until a run
    running, problem = scheduler_state(scheduler)
    from dataclasses import replace

    return installed if running else replace(installed, scheduler_problem=problem)


def scheduler_state(scheduler: str) -> tuple[bool, str]:
    """Would anything start the runs? (running, why not in words)."""
    if scheduler == "cron":
        if cron_daemon_running():
            return True, ""
        return False, ("the cron daemon is not running, so nothing will start the runs "
                       "(start it: sudo service cron start)")
    system = scheduler == "systemd-system"
    timer = f"{UNIT}.timer"
    try:
        state = _systemctl(system, "is-active", timer, check=False).strip()
    except ConfigError:  # no systemctl at all
        state = ""
    if state == "active":
        return True, ""
    enable = ("sudo systemctl enable --now " if system else "systemctl --user enable --now ")
    return False, (f"the systemd timer {timer} is {state or 'not reachable'}, so nothing will "
                   f"start the runs ({enable}{timer})")


RUN_NOW_TIMEOUT_S = 24 * 3600  # a run ends itself after STALL minutes without progress


def run_now(ops_dir: Path) -> dict[str, Any]:
    """Run the scheduled backup once, now, the way its scheduler starts it: the crontab line's
    own command through /bin/sh with cron's minimal environment, or ``systemctl start`` of
    the oneshot service (its hardening included). Returns the exit status, the status file's
    record of the run, and the output's tail when the run recorded nothing."""
    request = load_config(ops_dir)
    before = read_status(ops_dir).get("started")
    if request.scheduler == "cron":
        line = _crontab_line()
        if line is None:
            raise ConfigError("The schedule's crontab entry is missing on this server; run "
                              "`make schedule-ops` again.")
        pw = pwd.getpwuid(os.getuid())
        env = {"HOME": pw.pw_dir, "LOGNAME": pw.pw_name, "USER": pw.pw_name,
               "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
        # The crontab's own line, run by /bin/sh as cron runs it: this proves the entry itself
        # (quoting, paths, redirection), not a copy of its command.
        res = run_command(["/bin/sh", "-c", line], env=env, check=False,
                          timeout=RUN_NOW_TIMEOUT_S)
        tail = _tail(schedule_dir(ops_dir) / LOG)
    else:
        system = request.scheduler == "systemd-system"
        argv = (["sudo", "-n", "systemctl", "start", f"{UNIT}.service"] if system
                else ["systemctl", "--user", "start", f"{UNIT}.service"])
        res = run_command(argv, env=_env(), check=False, timeout=RUN_NOW_TIMEOUT_S)
        tail = res.stderr.strip()[-500:]
    last = read_status(ops_dir)
    ran = bool(last.get("started")) and last.get("started") != before
    return {"scheduler": request.scheduler, "exit_code": res.returncode,
            "recorded": ran, "last": last, "output_tail": "" if ran else tail}


def _crontab_line() -> str | None:
    """The command of our block's first (backup) line, as cron hands it to /bin/sh."""
    lines = _crontab_text().splitlines()
    if not has_block("\n".join(lines)):
        return None
    entry = lines[lines.index(BEGIN) + 1]
    command = entry.split(None, 5)[5]
    return command.replace("\\%", "%")  # crontab(5): an escaped % is a literal %


def _tail(path: Path, limit: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""


def _installed_scheduler(ops_dir: Path) -> str | None:
    try:
        return load_config(ops_dir).scheduler
    except ConfigError:
        return None


def remove(ops_dir: Path) -> list[str]:
    """Remove the timer/units or the crontab block, and the schedule's config and secrets
    (the status file and log stay, for the record). Returns what was removed."""
    removed: list[str] = []
    scheduler = _installed_scheduler(ops_dir)
    if scheduler in ("systemd-system", "systemd-user"):
        system = scheduler == "systemd-system"
        removed += _remove_units(system, [UNIT, TEST_UNIT])
        _systemctl(system, "daemon-reload", check=False)
    if cron_available():
        current = _crontab_text()
        if has_block(current):
            _write_crontab(without_block(current))
            removed.append(f"crontab entry of {login_user()}")
    for name in ("schedule.json", SECRETS, NOTIFY):
        path = ops_dir / "schedule" / name
        if path.exists():
            path.unlink()
            removed.append(str(path))
    return removed


def status(ops_dir: Path) -> dict[str, Any]:
    """What is installed, when it runs next, how the last run went, and the verdict
    (``health``: Nagios code and problems) computed here, with the server's own clock."""
    info = _status_info(ops_dir)
    facts = _facts(ops_dir, info)
    info["health"] = evaluate(facts, dt.datetime.now(dt.timezone.utc)).to_dict()
    return info


def _status_info(ops_dir: Path) -> dict[str, Any]:
    last = read_status(ops_dir)
    try:
        request = load_config(ops_dir)
    except ConfigError:
        return {"installed": False, "last": last}
    info: dict[str, Any] = {"installed": True, "scheduler": request.scheduler,
                            "calendar": request.calendar, "repo": request.repo,
                            "encrypted": bool(request.encrypt_to), "keep": request.keep,
                            "stall_minutes": request.stall_minutes, "last": last,
                            "test_restore": request.test_restore,
                            "notify": list(request.notify)}
    if request.scheduler == "cron":
        present = cron_available() and has_block(_crontab_text())
        info["present"] = present
        if present:
            when = calendar_to_cron(request.calendar, utc_offset_minutes=_utc_offset_minutes())
            info["next_run"] = next_cron_run(when, dt.datetime.now()).isoformat(
                timespec="minutes") + " (server local time)"
            info["daemon_running"] = cron_daemon_running()
            if request.test_restore:
                when = calendar_to_cron(request.test_restore,
                                        utc_offset_minutes=_utc_offset_minutes())
                info["next_test_restore"] = next_cron_run(when, dt.datetime.now()).isoformat(
                    timespec="minutes") + " (server local time)"
    else:
        system = request.scheduler == "systemd-system"
        nxt = _systemd_next(system)
        info["present"] = bool(nxt)
        info["next_run"] = nxt
        if request.test_restore:
            info["next_test_restore"] = _systemd_next(system, TEST_UNIT)
    return info


def _facts(ops_dir: Path, info: dict[str, Any]) -> ScheduleFacts:
    last = info.get("last") or {}
    if not info.get("installed"):
        return ScheduleFacts(installed=False, last=last)
    request = load_config(ops_dir)
    running, problem = scheduler_state(request.scheduler)
    alive = None
    if last.get("state") == "running" and last.get("pid"):
        alive = pid_alive(int(last["pid"]))
    installed_at = last.get("installed_at")
    return ScheduleFacts(
        installed=True, scheduler=request.scheduler, present=bool(info.get("present")),
        scheduler_running=running, scheduler_problem=problem,
        interval=_interval(request), last=last, last_pid_alive=alive,
        installed_at=dt.datetime.fromisoformat(installed_at) if installed_at else None,
        linger_off=request.scheduler == "systemd-user" and not _lingering())


def _lingering() -> bool:
    res = run_command(["loginctl", "show-user", login_user(), "--property=Linger", "--value"],
                      env=_env(), check=False)
    return res.stdout.strip() == "yes"


def _interval(request: ScheduleRequest) -> dt.timedelta | None:
    """The longest gap between two of the calendar's times (a week ahead is enough for the
    shapes a schedule takes); None when it cannot be worked out."""
    if request.scheduler == "cron":
        when = calendar_to_cron(request.calendar, utc_offset_minutes=_utc_offset_minutes())
        times = [dt.datetime.now()]
        for _ in range(16):
            times.append(next_cron_run(when, times[-1]))
        return longest_gap(times[1:])
    res = run_command(["systemd-analyze", "calendar", "--iterations=16", request.calendar],
                      env=_env(), check=False)
    return longest_gap(parse_elapses(res.stdout)) if res.returncode == 0 else None


_ELAPSE = re.compile(r"^\s*(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def parse_elapses(text: str) -> list[dt.datetime]:
    """The times ``systemd-analyze calendar --iterations=N`` lists (in its local time zone:
    only the gaps between them are used)."""
    return [dt.datetime.fromisoformat(m.group(1)) for line in text.splitlines()
            if (m := _ELAPSE.match(line))]
