"""``mmops web``: the Database Management page, one more thin front end over ``ops.jobs``."""

from __future__ import annotations

from .app import create_app
from .settings import WebSettings

__all__ = ["WebSettings", "create_app"]
