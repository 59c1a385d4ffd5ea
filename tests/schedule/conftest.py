from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cron_daemon import running_cron_daemon


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    """The real cron daemon, up for one test (tests/cron_daemon.py)."""
    with running_cron_daemon():
        yield
