"""Progress on stderr: a rich bar on a terminal; otherwise one line per phase (make output, CI
logs), JSON lines when asked, or nothing."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator

from ..engine.results import Progress, ProgressCallback


@contextlib.contextmanager
def progress_reporter(
    *, json_lines: bool = False, phases: bool = False, enabled: bool = True
) -> Iterator[ProgressCallback]:
    """Yield a progress callback: JSON lines if asked; a rich bar when stderr is a TTY; else
    one line per phase when ``phases``, or nothing."""
    if not enabled:
        yield lambda _p: None
        return
    if json_lines:

        def emit_json(p: Progress) -> None:
            sys.stderr.write(json.dumps({"progress": p.to_dict()}) + "\n")
            sys.stderr.flush()

        yield emit_json
        return
    if not sys.stderr.isatty():
        if not phases:
            yield lambda _p: None
            return
        last: dict[str, str | None] = {"phase": None}

        def plain(p: Progress) -> None:
            if p.phase != last["phase"]:
                last["phase"] = p.phase
                sys.stderr.write(f"  … {p.phase}" + (f": {p.message}" if p.message else "")
                                 + "\n")
                sys.stderr.flush()

        yield plain
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
