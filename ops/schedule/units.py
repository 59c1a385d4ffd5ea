"""The systemd units of a schedule: a hardened oneshot service and its timer. Pure text.

The service runs ``OPS_DIR/venv/bin/python -m ops.agent scheduled-backup --ops-dir OPS_DIR``:
the same command a crontab entry runs. No secret is ever in a unit: DATABASE_URL stays in the
app's env file (handed in with ``LoadCredential=`` for system units, so a root-only file works
without sudo) and storage keys in ``OPS_DIR/schedule/storage.env`` (0600).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .spec import TEST_UNIT, UNIT, ScheduleRequest

CREDENTIAL = "app.env"
BACKUP, TEST_RESTORE = "scheduled-backup", "scheduled-test-restore"  # the agent's commands
UNIT_OF = {BACKUP: UNIT, TEST_RESTORE: TEST_UNIT}
DESCRIPTION = {BACKUP: "scheduled backup (backup, verify, publish, prune)",
               TEST_RESTORE: "scheduled test restore (latest backup into a throwaway PostgreSQL)"}


def scheduled_command(ops_dir: str, job: str = BACKUP) -> list[str]:
    """The one command every scheduler runs for ``job`` (argv)."""
    python = str(PurePosixPath(ops_dir) / "venv" / "bin" / "python")
    return [python, "-m", "ops.agent", job, "--ops-dir", ops_dir]


def jobs_of(request: ScheduleRequest) -> list[tuple[str, str]]:
    """(job, calendar) of every scheduled job: the backup, and the test restore if any."""
    jobs = [(BACKUP, request.calendar)]
    if request.test_restore:
        jobs.append((TEST_RESTORE, request.test_restore))
    return jobs


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-:=@+," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


HARDENING = """\
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={writable}
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
"""


def render_service(request: ScheduleRequest, *, ops_dir: str, system: bool,
                   user: str | None = None, group: str | None = None, job: str = BACKUP) -> str:
    """The oneshot service of ``job``. ``system``: a system unit running as ``user`` (the SSH
    login user who owns OPS_DIR); otherwise a user unit of that user."""
    writable = [_systemd_quote(ops_dir)]
    if "://" not in request.repo:  # a local repository dir ("-": it may not exist yet)
        writable.append("-" + _systemd_quote(request.repo))
    command = " ".join(_systemd_quote(a) for a in scheduled_command(ops_dir, job))
    lines = [
        "[Unit]",
        f"Description=markdown-manager-ops {DESCRIPTION[job]}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
    ]
    if system:
        lines += [f"User={user}", f"Group={group or user}",
                  f"LoadCredential={CREDENTIAL}:{request.env_file}",
                  f"Environment=MMOPS_SCHEDULE_ENV_FILE=%d/{CREDENTIAL}",
                  "CapabilityBoundingSet=", "AmbientCapabilities="]
    lines += [
        f"WorkingDirectory={_systemd_quote(ops_dir)}",
        f"ExecStart={command}",
        "UMask=0077",
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        # The run aborts itself after STALL minutes without progress; this is the backstop.
        "TimeoutStartSec=12h",
        HARDENING.format(writable=" ".join(writable)).rstrip(),
    ]
    return "\n".join(lines) + "\n"


def render_timer(request: ScheduleRequest, job: str = BACKUP) -> str:
    calendar = dict(jobs_of(request))[job]
    return "\n".join([
        "[Unit]",
        f"Description=markdown-manager-ops {DESCRIPTION[job].split(' (')[0]} timer",
        "",
        "[Timer]",
        f"OnCalendar={calendar}",
        "Persistent=true",  # a run missed while the server was off happens at the next boot
        f"RandomizedDelaySec={request.randomized_delay}",
        "AccuracySec=1min",
        f"Unit={UNIT_OF[job]}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]) + "\n"
