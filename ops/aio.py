"""Run one asyncio job so that Ctrl-C, SIGTERM and SIGHUP cancel it cleanly.

The signal cancels the job's task (connections close, partial files go, the job's own
``except CancelledError`` says what state things are in); ``asyncio.run`` then shuts the loop
down properly, so an operator sees one sentence and no "Event loop is closed" tracebacks.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import Interrupted

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(
    job: Callable[[], Coroutine[Any, Any, T]],
    *,
    on_start: Callable[[Callable[[], None]], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    signals: bool | None = None,
) -> T:
    """Run ``job()``; ``on_start(cancel)`` lets another source (the agent's stdin) cancel too.

    ``signals``: install the signal handlers (default: only in the main thread, the one place
    Python allows them; a web server's worker thread runs jobs without them).
    """
    if signals is None:
        signals = threading.current_thread() is threading.main_thread()
    handled: tuple[signal.Signals, ...] = SIGNALS if signals else ()

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in handled:
            loop.add_signal_handler(sig, task.cancel)

        def cancel() -> None:
            loop.call_soon_threadsafe(task.cancel)

        if on_start is not None:
            on_start(cancel)
        try:
            return await job()
        finally:
            if on_stop is not None:
                on_stop()
            for sig in handled:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise Interrupted(
            "The job was interrupted; its connections were closed and its partial files "
            "removed."
        ) from None
