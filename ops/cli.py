"""The `mmops` command line: parse → call one function → render → exit code. No logic here."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .errors import OpsError


class OpsGroup(click.Group):
    """Maps our exception tree to one clear sentence on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was changed (partial files removed).", err=True)
            ctx.exit(130)


@click.group(cls=OpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmops")
def main() -> None:
    """Back up and restore markdown-manager's PostgreSQL database."""


def run() -> None:  # pragma: no cover - console entry for `python -m ops.cli`
    sys.exit(main())
