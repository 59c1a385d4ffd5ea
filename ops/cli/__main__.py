"""``python -m ops.cli`` = ``mmops`` (how ``mmops fleet`` runs each host's command)."""

from . import run

run()
