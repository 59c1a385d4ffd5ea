"""Progress on stderr: a rich bar on a terminal; otherwise one line per phase (make output, CI
logs), JSON lines when asked, or nothing."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator

from ..engine.results import Progress, ProgressCallback
from .common import human_size


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
    from rich.progress import BarColumn, ProgressColumn, Task, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class BytesColumn(ProgressColumn):
        """``1.2 MiB of 3.4 MiB, 5.6 MiB/s`` in the CLI's one unit system (``human_size``,
        binary): rich's DownloadColumn and TransferSpeedColumn would mix decimal units in."""

        def render(self, task: Task) -> Text:
            done = human_size(task.completed)
            text = done if task.total is None else f"{done} of {human_size(task.total)}"
            speed = task.finished_speed or task.speed
            if speed:
                text += f", {human_size(speed)}/s"
            return Text(text, style="progress.download")

    console = Console(stderr=True)
    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        BytesColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def emit(p: Progress) -> None:
            label = p.phase + (f" {p.item}" if p.item else "") + (
                f": {p.message}" if p.message else ""
            )
            bar.update(task, description=label[:60], completed=p.done, total=bar_total(p))

        yield emit


def bar_total(p: Progress) -> int | None:
    """The total a bar shows for ``p``: never less than what is done (an estimate that fell
    short, e.g. from an older agent, grows rather than reading "47 MiB of 426 KiB")."""
    return None if p.total is None else max(p.total, p.done)
