"""Where a backup is written before it goes to a repository, when no local copy was asked for.

The plain file then lives only in a private 0700 directory under ``$TMPDIR`` (never the current
directory or BACKUP_DIR), named ``mmops-stage-<pid>-<random>``; the directory goes away on
success, failure, Ctrl-C and SIGTERM (``aio.run`` turns both into a cancellation, so the ``with``
block ends), and a run killed outright (SIGKILL, power loss) leaves one that the next ``mmops``
command removes (:func:`remove_stale_staging`), wherever it is started.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..process import pid_alive

PREFIX = "mmops-stage-"
_NAME_RE = re.compile(rf"^{re.escape(PREFIX)}(\d+)-[A-Za-z0-9_]+$")


@contextlib.contextmanager
def private_staging() -> Iterator[Path]:
    """A new 0700 directory under ``$TMPDIR`` (unpredictable name, our pid in it), removed
    however the block ends."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))  # mkdtemp: 0700
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging(root: Path | None = None) -> list[Path]:
    """Remove the staging directories of runs that are gone (their pid is not alive), of this
    user only; returns what was removed."""
    base = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _NAME_RE.match(entry.name)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not entry.is_dir() or entry.is_symlink() or st.st_uid != os.getuid():
            continue
        if not pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


__all__ = ["PREFIX", "private_staging", "remove_stale_staging"]
