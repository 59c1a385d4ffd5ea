"""The typed database-name confirmation: one rule for every command and mode."""

from __future__ import annotations

import sys

import click

from ..errors import RestoreRefused
from ..policy.plan import Plan


def typed_confirmation(plan: Plan, *, yes: bool) -> bool:
    """True when the operator typed the database name (or passed --yes / YES=1).

    Without a terminal to ask on, the restore is refused with what to do; end of input or a
    wrong name refuses too. Never click's bare "Aborted!".
    """
    if yes:
        return True
    database = plan.database
    if not sys.stdin.isatty():
        raise RestoreRefused(
            f"This restore replaces data in {database!r} and needs the database name typed; "
            "there is no terminal to ask on. Pass --yes (make: YES=1) to confirm. Nothing was "
            "changed."
        )
    try:
        answer = click.prompt(f"Type the database name ({database}) to replace its contents",
                              default="", show_default=False, err=True)
    except (click.Abort, EOFError):
        raise RestoreRefused("No confirmation was typed; nothing was changed.") from None
    if str(answer).strip() != database:
        raise RestoreRefused("The typed name did not match; nothing was changed.")
    return True
