"""Debian's real cron daemon, running for the length of a ``with`` block.

A schedule is only healthy while its scheduler runs, so the tests need the real daemon up (and
down). It runs in a private mount namespace whose crontab spool, /etc/cron.d and /etc/crontab
are empty: it is the real daemon the agent's check finds, but it starts no job — neither the
tests' own (which run their crontab line by hand, as cron would) nor anyone else's on this
machine.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from ops.schedule.host import cron_daemon_running
from tests.remote_sandbox import wait_until

CRON = shutil.which("cron", path="/usr/sbin:/sbin:/usr/bin")
_EMPTY = ("mount -t tmpfs -o mode=1730 tmpfs /var/spool/cron/crontabs && "
          "mount -t tmpfs tmpfs /etc/cron.d && mount --bind /dev/null /etc/crontab && "
          f"exec {CRON} -f")


@contextlib.contextmanager
def running_cron_daemon() -> Iterator[None]:
    if CRON is None:
        pytest.fail("cron is not installed (apt-get install cron)")
    if cron_daemon_running():
        pytest.fail("a cron daemon already runs here; the tests need to start and stop their own")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                             _EMPTY], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(cron_daemon_running), "cron did not start"
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        assert wait_until(lambda: not cron_daemon_running()), "cron did not stop"
