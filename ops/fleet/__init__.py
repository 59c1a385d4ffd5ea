"""Fleets: one single-host command (setup, backup, schedule, schedule status) on every host of
an inventory (``HOSTS=inventory.toml``), in parallel with a bound, one summary row per host.

``inventory.py`` reads and checks the TOML file, ``commands.py`` names the single-host command
each fleet command runs, ``runner.py`` runs them (one child process per host, a bounded pool,
per-host logs, Ctrl-C), ``results.py`` holds the rows.
"""

from __future__ import annotations

from .commands import COMMANDS, FleetCommand
from .inventory import FleetHost, Inventory, load_inventory
from .results import FleetResult, HostResult
from .runner import default_log_dir, run_fleet

__all__ = [
    "COMMANDS",
    "FleetCommand",
    "FleetHost",
    "FleetResult",
    "HostResult",
    "Inventory",
    "default_log_dir",
    "load_inventory",
    "run_fleet",
]
