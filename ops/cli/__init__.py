"""The ``mmops`` command line: one module per command group, each thin (parse → call a job →
render → exit code). ``ops.cli:main`` is the console entry point."""

from __future__ import annotations

import sys

import click

from .._version import __version__
from .check import check
from .common import OpsGroup
from .engine import backup, export, inspect, restore, verify
from .fleet import fleet
from .notify import notify
from .remote import remote
from .sandbox import sandbox
from .schedule import schedule
from .storage import key, repo
from .tunnel import tunnel
from .web import web


@click.group(cls=OpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmops")
def main() -> None:
    """Back up and restore markdown-manager's PostgreSQL database."""
    from ..steps.staging import remove_stale_staging

    remove_stale_staging()  # what a killed backup left under $TMPDIR, whatever runs next


for command in (backup, restore, verify, inspect, export, sandbox, remote, tunnel, web, key,
                repo, check, schedule, fleet, notify):
    main.add_command(command)


def _show_envvars(command: click.Command) -> None:
    """Every option read from an environment variable (a Make variable) says so in --help."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _show_envvars(sub)


_show_envvars(main)


def run() -> None:  # pragma: no cover - console entry for `python -m ops.cli`
    sys.exit(main())


__all__ = ["main"]
