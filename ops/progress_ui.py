"""Progress on stderr: a rich bar on a terminal, nothing (or JSON lines) otherwise."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator

from .engine.results import Progress, ProgressCallback


@contextlib.contextmanager
def progress_reporter(*, json_lines: bool = False) -> Iterator[ProgressCallback]:
    """Yield a progress callback. Rich bar when stderr is a TTY, JSON lines if asked, else quiet."""
    if json_lines:

        def emit_json(p: Progress) -> None:
            sys.stderr.write(json.dumps({"progress": p.to_dict()}) + "\n")
            sys.stderr.flush()

        yield emit_json
        return
    if not sys.stderr.isatty():
        yield lambda _p: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    console = Console(stderr=True)
    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def emit(p: Progress) -> None:
            label = p.phase + (f" {p.item}" if p.item else "") + (
                f": {p.message}" if p.message else ""
            )
            bar.update(task, description=label[:60], completed=p.done, total=p.total)

        yield emit
