"""``mmops schedule install|remove|status`` (make schedule-ops | unschedule-ops |
schedule-status): scheduled backups on the server, installed through the agent.

Parse → open the agent (one strict SSH connection, agent brought up to date) → one agent
command → render. Storage keys and NOTIFY's URLs (which may hold tokens) travel on the agent's
stdin and land in 0600 files on the server; they are never on a command line, in a unit file
or a crontab, nor printed (a NOTIFY target is shown by its label: service and host).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import click

from ..errors import UsageError
from .common import echo_json, notice
from .shared import agent_options, remote_settings

SSH = agent_options()
_remote_options = SSH.command


@contextlib.contextmanager
def _agent(o: dict[str, Any]) -> Iterator[Any]:
    from ..transport.agent import open_agent

    settings = remote_settings(o, notice)
    with open_agent(settings, notice=notice) as transport:
        yield transport


def _call(transport: Any, command: str, *, timeout: float | None = 300,
          **message: Any) -> dict[str, Any]:
    from ..ssh.agent_channel import AgentSession, agent_argv

    argv = agent_argv(transport.settings.ops_dir, command, "--host", transport.label)
    with AgentSession(transport.conn, argv) as s:
        if message:
            s.send(cmd="request", **message)
        s.end_input()
        return s.expect("result", timeout=timeout)


def _health(info: dict[str, Any]) -> Any:
    from ..schedule.health import Health, unknown

    raw = info.get("health")
    if not isinstance(raw, dict) or "code" not in raw:
        return unknown("the server's agent did not report the schedule's health")
    return Health(int(raw["code"]), list(raw.get("problems") or []))


def _finish(health: Any, label: str, *, as_json: bool) -> None:
    """Exit with the Nagios code; a problem's sentence also goes to stderr with --json (what
    `mmops fleet` shows in its summary row)."""
    if health.code:
        if as_json:
            click.echo(f"error: {health.line(label)}", err=True)
        click.get_current_context().exit(health.code)


@click.group("schedule")
@SSH.group
def schedule() -> None:
    """Scheduled backups on the server: systemd timer (or cron), lock, stall timeout, status.
    The SSH options work before or after the subcommand."""


@schedule.command("install")
@_remote_options
@click.option("--repo", envvar=["REPO", "MMOPS_REPO"], required=True,
              help="Where the server stores the backups: an absolute directory on the server, "
              "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")
@click.option("--encrypt-to", envvar="ENCRYPT_TO", help="age recipient(s) (public keys).")
@click.option("--keep", envvar="KEEP", help='Retention, e.g. "daily=7 weekly=4 monthly=12".')
@click.option("--lock-days", envvar="LOCK_DAYS", type=click.IntRange(1, 36500),
              help="S3 Object Lock retention for each upload.")
@click.option("--calendar", envvar="CALENDAR", default="*-*-* 02:00:00 UTC", show_default=True,
              help="systemd OnCalendar (cron: '[Dow ]*-*-* HH:MM[:SS] [UTC]').")
@click.option("--randomized-delay", envvar="RANDOMIZED_DELAY", default="15min",
              show_default=True, help="systemd RandomizedDelaySec of the timer.")
@click.option("--stall", envvar="STALL", type=click.FloatRange(min=0.1), default=10,
              show_default=True, help="Abort a run after this many minutes without progress.")
@click.option("--repo-env-file", envvar="REPO_ENV_FILE",
              help="Server-side dotenv file with storage settings [ENV_FILE].")
@click.option("--scheduler", envvar="SCHEDULER", default="auto", show_default=True,
              type=click.Choice(["auto", "systemd-system", "systemd-user", "cron"]),
              help="What runs the backup: auto = system units with sudo -n, else user units "
              "when systemd runs, else cron.")
@click.option("--test-restore", envvar="TEST_RESTORE",
              help="Calendar of a scheduled test restore on the server, e.g. "
              "'Sun *-*-* 04:00:00 UTC' (unencrypted repositories only).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def install_cmd(repo: str, encrypt_to: str | None, keep: str | None, lock_days: int | None,
                calendar: str, randomized_delay: str, stall: float, repo_env_file: str | None,
                scheduler: str, test_restore: str | None, as_json: bool, **remote: Any) -> None:
    """Install the scheduled backup on the server (replaces a previous one).

    NOTIFY (environment only — its URLs may hold tokens): targets told of every run's
    success, failure or stall, and of the test restore's result."""
    from ..notify import parse_targets
    from ..repository import check_repository_spec
    from ..schedule.spec import ScheduleRequest
    from ..steps.publish import STORAGE_ENV

    if "://" in repo:
        check_repository_spec(repo)
    elif not repo.startswith("/"):
        raise UsageError(f"REPO={repo!r}: a scheduled backup needs an absolute directory on the "
                         "server, or s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")
    if keep:
        from ..policy.keep_spec import parse_keep

        parse_keep(keep)
    if encrypt_to:
        from ..crypto.age import parse_recipients

        parse_recipients(encrypt_to)
    notify = os.environ.get("NOTIFY", "")
    parse_targets(notify)  # a bad target is refused here, before anything
    storage_env = {k: os.environ[k] for k in STORAGE_ENV if os.environ.get(k)}
    with _agent(remote) as transport:
        request = ScheduleRequest(
            repo=repo, encrypt_to=encrypt_to or None, keep=keep or None, lock_days=lock_days,
            calendar=calendar, randomized_delay=randomized_delay, stall_minutes=stall,
            env_file=transport.settings.env_file, repo_env_file=repo_env_file or None,
            host=transport.label, scheduler=scheduler, test_restore=test_restore or None)
        result = _call(transport, "schedule-install", request=request.to_dict(),
                       storage_env=storage_env, notify=notify)
    inst = result["installed"]
    if as_json:
        echo_json(result)
        _refuse_unstarted(inst, transport.label)
        return
    click.echo(f"Scheduled backup installed on {transport.label} ({inst['scheduler']}): "
               f"{calendar} → {repo}" + (" (age-encrypted)" if encrypt_to else ""))
    click.echo(f"  runs      {' '.join(inst['command'])}")
    click.echo(f"  files     {', '.join(inst['files'])}")
    click.echo(f"  next run  {inst['next_run'] or '-'}")
    if result.get("test_restore"):
        click.echo(f"  test restore  {result['test_restore']} (newest backup into a throwaway "
                   "PostgreSQL on the server)")
    if result.get("storage_env"):
        click.echo(f"  secrets   {', '.join(result['storage_env'])} in "
                   f"{transport.settings.ops_dir}/schedule/storage.env (0600)")
    if result.get("notify"):
        click.echo(f"  notify    {', '.join(result['notify'])} (URLs in "
                   f"{transport.settings.ops_dir}/schedule/notify.env, 0600)")
    for note in inst.get("notes", []):
        click.echo(f"  note      {note}")
    _refuse_unstarted(inst, transport.label)
    click.echo("  prove it  make schedule-run-ops (runs it once now, as the scheduler would)")


def _refuse_unstarted(inst: dict[str, Any], label: str) -> None:
    """Installed, but nothing would start it: not a success (exit 3, the reason and the fix)."""
    if inst.get("scheduler_problem"):
        from ..errors import ConfigError

        raise ConfigError(f"The schedule is installed on {label}, but "
                          f"{inst['scheduler_problem']}; then prove it with `make "
                          "schedule-run-ops` and check `make schedule-status`.")


@schedule.command("remove")
@_remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def remove_cmd(as_json: bool, **remote: Any) -> None:
    """Remove the scheduled backup (timer and units, or the crontab entry, and its secrets)."""
    with _agent(remote) as transport:
        result = _call(transport, "schedule-remove")
    if as_json:
        echo_json(result)
        return
    removed = result["removed"]
    if not removed:
        click.echo(f"No scheduled backup was installed on {transport.label}.")
    for item in removed:
        click.echo(f"removed {item}")


@schedule.command("status")
@_remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def status_cmd(as_json: bool, **remote: Any) -> None:
    """Show the schedule (next run, last run, last result) and exit 0 OK, 1 WARNING,
    2 CRITICAL or 3 UNKNOWN (a Nagios/Icinga plugin): CRITICAL when the last run failed, runs
    were missed or nothing would start them (cron daemon, systemd timer)."""
    from ..errors import OpsError
    from ..schedule.health import unknown

    label = remote.get("host") or "the sandbox"
    try:
        with _agent(remote) as transport:
            label = transport.label
            info = _call(transport, "schedule-status")["schedule"]
    except OpsError as exc:  # the verdict cannot be known: UNKNOWN, never CRITICAL
        health = unknown(f"the schedule's status could not be read: {exc}")
        if as_json:
            echo_json({"health": health.to_dict()})
        else:
            click.echo(health.line(label))
        # The sentence on stderr too, as every error: a fleet row shows it.
        click.echo(f"error: {exc}", err=True)
        click.get_current_context().exit(health.code)
        return
    health = _health(info)
    if as_json:
        echo_json(info)
    else:
        click.echo(health.line(label))
        _render_status(info, label)
    _finish(health, label, as_json=as_json)


def _render_status(info: dict[str, Any], label: str) -> None:
    last = info.get("last") or {}
    if not info.get("installed"):
        click.echo(f"No scheduled backup on {label}.")
    else:
        state = "" if info.get("present") else "  (MISSING from the scheduler: reinstall)"
        click.echo(f"Scheduled backup on {label} ({info['scheduler']}): "
                   f"{info['calendar']} → {info['repo']}{state}")
        click.echo(f"  next run  {info.get('next_run') or '-'}")
    if last.get("started"):
        click.echo(f"  last run  {last.get('started', '-')} → {last.get('finished') or '-'}"
                   + ("  (running now)" if last.get("state") == "running" else ""))
        click.echo(f"  result    {last.get('result', '-')}: {last.get('message', '')}")
        if last.get("notify_warning"):
            click.echo(f"  warning   {last['notify_warning']}")
    else:
        click.echo("  last run  never")
    if info.get("test_restore"):
        click.echo(f"  test restore  {info['test_restore']}, next "
                   f"{info.get('next_test_restore') or '-'}")
    tested = last.get("test_restore") or {}
    if tested:
        click.echo(f"  last test restore  {tested.get('started', '-')} → "
                   f"{tested.get('finished') or '-'}: {tested.get('result', '-')}: "
                   f"{tested.get('message', '')}")
    if info.get("notify"):
        click.echo(f"  notify    {', '.join(info['notify'])}")


@schedule.command("run-now")
@_remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the run's result as JSON on stdout.")
def run_now_cmd(as_json: bool, **remote: Any) -> None:
    """Run the scheduled backup once, now, the way its scheduler starts it (the crontab
    line, or the systemd service with its hardening), to prove it works. Exit 0 when it
    succeeded; otherwise its own exit code, with the reason in one sentence."""
    from ..errors import OpsError

    with _agent(remote) as transport:
        click.echo(f"Running the scheduled backup on {transport.label} now, as its scheduler "
                   "would …", err=True)
        result = _call(transport, "schedule-run-now", timeout=None)
    ran, info = result["run"], result["schedule"]
    last = ran.get("last") or {}
    health = _health(info)
    if as_json:
        echo_json(result)
    elif ran.get("recorded"):
        click.echo(f"Scheduled backup on {transport.label} ran now: {last.get('result')}: "
                   f"{last.get('message', '')}")
        click.echo(health.line(transport.label))
    if ran.get("recorded") and last.get("result") == "ok" and ran.get("exit_code") == 0:
        return
    code = int(ran.get("exit_code") or 1)
    if not ran.get("recorded"):
        tail = " ".join(str(ran.get("output_tail") or "no output").split())[-300:]
        raise OpsError(f"The scheduled backup on {transport.label} did not run (exit {code}, "
                       f"nothing recorded in its status): {tail}")
    error = OpsError(f"The scheduled backup on {transport.label} ran now and "
                     f"{last.get('result')}: {last.get('message', '')}")
    error.exit_code = code if 0 < code < 126 else 1
    raise error


@schedule.command("test-notify")
@_remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def test_notify_cmd(as_json: bool, **remote: Any) -> None:
    """Send a test notification from the server to the schedule's NOTIFY targets (exit 14
    if one fails)."""
    from ..notify import Delivery
    from .notify import report_deliveries

    with _agent(remote) as transport:
        result = _call(transport, "schedule-test-notify")
    deliveries = [Delivery(**d) for d in result["deliveries"]]
    if as_json:
        echo_json(result)
    report_deliveries(deliveries, heading=f"Test notification from {transport.label}:",
                      show=not as_json)
