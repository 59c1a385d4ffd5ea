"""Notifications (``NOTIFY=``): what happened (``event``), where it goes (``targets``: a JSON
webhook or any apprise URL — Slack, Telegram, e-mail, …) and delivering it (``send``).

A notification URL may hold a token, so it is a secret: it is never rendered. Messages name a
target by its ``label`` (service and host only), never by its URL.
"""

import logging

from .event import Event
from .send import Delivery, NotifyFailed, send
from .targets import Target, parse_targets

# apprise logs what it could not parse or deliver with the URL's tokens in it ("An invalid
# Slack Token (xoxb-…) was specified"): keep its records out of any logging the host process
# configured. Our own messages name a target by its label.
logging.getLogger("apprise").propagate = False

__all__ = ["Delivery", "Event", "NotifyFailed", "Target", "parse_targets", "send"]
