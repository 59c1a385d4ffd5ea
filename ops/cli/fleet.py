"""``mmops fleet setup|backup|schedule|schedule-status --hosts inventory.toml [--parallel N]``
(``make setup-remote-ops | db-backup-ops | schedule-ops | schedule-status`` with ``HOSTS=``).

Parse → read the inventory → run the single-host command on every host (ops.fleet) → one
summary table → exit 0 when every host succeeded, 1 when any failed, 130 when interrupted.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import Interrupted, OpsError
from .common import echo_json, human_size
from .shared import SharedOptions

if TYPE_CHECKING:
    from ..fleet import FleetResult


FLEET = SharedOptions(
    click.option("--hosts", "hosts", envvar="HOSTS", show_envvar=True,
                 type=click.Path(path_type=Path, dir_okay=True),
                 help="The inventory (TOML): [defaults] and one [hosts.NAME] table per "
                 "host with its settings (env_file, repo, ...). Required."),
    click.option("--parallel", "-p", envvar="PARALLEL", show_envvar=True,
                 type=click.IntRange(1, 64), default=4, show_default=True,
                 help="Hosts at most at once."),
    click.option("--log-dir", envvar="FLEET_LOG_DIR", show_envvar=True,
                 type=click.Path(path_type=Path, file_okay=False),
                 help="Where each host's log goes [.state/fleet/<UTC>-<command>]."),
)


def _fleet_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--quiet", "-q", is_flag=True,
                     help="Do not echo the hosts' output (it is still in their logs).")(f)
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print the summary as JSON on stdout.")(f)
    return FLEET.command(f)


@click.group("fleet")
@FLEET.group
def fleet() -> None:
    """Run setup, backup or schedule on every host of an inventory, in parallel. --hosts,
    --parallel and --log-dir work before or after the subcommand."""


def _run(command_name: str, hosts: Path | None, parallel: int, log_dir: Path | None,
         as_json: bool, quiet: bool) -> None:
    from ..errors import UsageError
    from ..fleet import COMMANDS, default_log_dir, load_inventory, run_fleet

    if hosts is None:
        raise UsageError(f"mmops fleet {command_name} needs the inventory: --hosts FILE.toml "
                         "(make: HOSTS=FILE.toml).")

    environ = dict(os.environ)
    inventory = load_inventory(hosts, environ)
    printing = threading.Lock()

    def on_line(name: str, line: str) -> None:
        if quiet and name != "fleet":
            return
        with printing:
            click.echo(f"[{name}] {line}", err=True)

    result = run_fleet(inventory, COMMANDS[command_name], parallel=parallel,
                       log_dir=log_dir or default_log_dir(command_name), environ=environ,
                       on_line=on_line)
    if as_json:
        echo_json(result.to_dict())
    else:
        render_summary(result)
    failed = [h.name for h in result.hosts if h.result == "failed"]
    if result.interrupted:
        raise Interrupted(  # claims only what the fleet knows; each host's command says more
            f"Interrupted: {result.count('ok')} host(s) finished, {result.count('interrupted')} "
            f"interrupted, {result.count('not started')} not started"
            + (f", {len(failed)} failed" if failed else "")
            + f"; each host's log in {result.log_dir} says what its command did.")
    if failed:
        raise OpsError(f"{len(failed)} of {len(result.hosts)} hosts failed ({', '.join(failed)}); "
                       f"the summary has each one's error, the logs in {result.log_dir}.")


def render_summary(result: FleetResult) -> None:
    """One table: host, result, size, duration, detail (rich; plain text when piped)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    tty = sys.stdout.isatty()
    # Piped (make's output, CI logs, scripts): never fold a path or an error over two lines.
    console = Console(width=None if tty else 10_000, highlight=False, soft_wrap=False)
    table = Table(title=f"mmops fleet {result.command}", box=box.SIMPLE_HEAD,
                  title_justify="left")
    for name, justify in (("host", "left"), ("result", "left"), ("size", "right"),
                          ("duration", "right"), ("detail", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    styles = {"ok": "green", "failed": "bold red", "interrupted": "yellow",
              "not started": "dim"}
    for h in result.hosts:
        word = h.result + (f" ({h.exit_code})" if h.result == "failed" else "")
        table.add_row(  # Text, not markup: an error or a path may hold "[...]"
            Text(h.name),
            Text(word, style=styles[h.result]),
            human_size(h.size_bytes) if h.size_bytes is not None else "-",
            f"{h.duration_s:.1f}s" if h.duration_s is not None else "-",
            Text(h.detail or "-"),
        )
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()), color=tty)
    click.echo(f"{result.inventory}: {result.count('ok')} ok, {result.count('failed')} failed"
               + (f", {result.count('interrupted')} interrupted, "
                  f"{result.count('not started')} not started" if result.interrupted else "")
               + f" (at most {result.parallel} at once); logs in {result.log_dir}")


def _command(name: str, doc: str) -> click.Command:
    @_fleet_options
    def command(hosts: Path | None, parallel: int, log_dir: Path | None, as_json: bool,
                quiet: bool) -> None:
        _run(name, hosts, parallel, log_dir, as_json, quiet)

    command.__doc__ = doc
    return click.command(name)(command)


for _name, _doc in (
    ("setup", "Provision every host (`mmops remote setup` on each; make setup-remote-ops "
     "HOSTS=…)."),
    ("backup", "Back up every host (`mmops remote backup` on each; make db-backup-ops HOSTS=…); "
     "a shared BACKUP_DIR or REPO gets one subdirectory / prefix per host."),
    ("schedule", "Schedule backups on every host (`mmops schedule install` on each; make "
     "schedule-ops HOSTS=…)."),
    ("schedule-status", "Show every host's schedule (`mmops schedule status` on each; make "
     "schedule-status HOSTS=…)."),
    ("unschedule", "Remove every host's schedule (`mmops schedule remove` on each; make "
     "unschedule-ops HOSTS=…)."),
):
    fleet.add_command(_command(_name, _doc))
