"""``mmops notify test``: send a test notification to every ``NOTIFY`` target from here, so an
operator sees each one arrive (``mmops schedule test-notify`` sends from the server).

``NOTIFY`` is read from the environment only — never a flag — because its URLs may hold tokens
and a command line is visible to every user of the machine.
"""

from __future__ import annotations

import os
import socket

import click

from ..errors import UsageError
from .common import echo_json


def targets_from_env() -> list:
    from ..notify import parse_targets

    targets = parse_targets(os.environ.get("NOTIFY"))
    if not targets:
        raise UsageError("NOTIFY is not set: export NOTIFY='https://hooks.example/… "
                         "slack://…' (one or more URLs, separated by spaces) first.")
    return targets


def report_deliveries(deliveries: list, *, heading: str | None = None,
                      show: bool = True) -> None:
    """Print each delivery (under ``heading``) unless ``show`` is off (--json printed them),
    then fail with exit 14 when a target did not take the notification."""
    from ..notify import NotifyFailed
    from ..notify.send import failures_sentence

    if show:
        if heading:
            click.echo(heading)
        for d in deliveries:
            click.echo(f"  delivered  {d.target}" if d.ok else f"  FAILED     {d.error}")
    failed = failures_sentence(deliveries)
    if failed:
        raise NotifyFailed(failed)


@click.group("notify")
def notify() -> None:
    """Notifications (NOTIFY=…): a JSON webhook, Slack, Telegram, e-mail, … via apprise."""


@notify.command("test")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def test_cmd(as_json: bool) -> None:
    """Send a test notification to every NOTIFY target (exit 14 if one fails)."""
    from ..notify import Event, send

    targets = targets_from_env()
    host = socket.gethostname()
    deliveries = send(Event("test", "test", host, f"mmops can reach this target from {host}."),
                      targets)
    if as_json:
        echo_json({"deliveries": [d.to_dict() for d in deliveries]})
    report_deliveries(deliveries, heading=f"Test notification to {len(targets)} target(s):",
                      show=not as_json)


@notify.command("send")
@click.option("--event", "kind", type=click.Choice(["backup", "test-restore", "test"]),
              required=True, help="What ran.")
@click.option("--result", type=click.Choice(["ok", "failed", "stalled", "test"]),
              required=True, help="How it ended.")
@click.option("--message", required=True, help="The one sentence to send.")
@click.option("--host", default=None, help="Where it ran [this machine's name].")
@click.option("--database", default=None, help="The database the event is about.")
def send_cmd(kind: str, result: str, message: str, host: str | None,
             database: str | None) -> None:
    """Send one event to every NOTIFY target (for CI jobs and your own scripts; exit 14 if a
    target fails)."""
    from ..notify import Event, send

    targets = targets_from_env()
    deliveries = send(Event(kind, result, host or socket.gethostname(), message,
                            database=database), targets)
    report_deliveries(deliveries)
