"""Run one single-host command on every host of an inventory, at most ``parallel`` at a time.

Each host's command is the ordinary ``mmops`` command (``python -m ops.cli remote backup
--json`` …) in its own child process, its settings in that child's environment — so a fleet
backup is exactly the backup `make db-backup-ops` takes, never a second implementation.

Why child processes rather than threads running the commands in-process: the single-host code
writes to this process's stdout/stderr (results, notices, progress), and its clean-up on Ctrl-C
relies on the signal reaching *its* main thread (``aio.run`` installs handlers only there; an
agent session cleans the server's temp dir on KeyboardInterrupt). A child per host keeps each
host's output apart (captured to its own log, parsed from its own ``--json``), makes a crash or
hang of one host's SSH or database library unable to touch the others, and lets Ctrl-C clean up
on every host exactly as it would alone. The cost is one interpreter start per host, small next
to an SSH connection. Threads are used only to supervise the children: a pool of ``parallel``
workers is the bound.

Ctrl-C (or SIGTERM): no new host starts; an interrupt (SIGINT) is passed to every running
host's command (each runs in its own session, so a terminal's Ctrl-C reaches only this process
and is passed on exactly once), which cleans up and exits; then the summary says what
finished, what was interrupted and what never started.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from .commands import FleetCommand
from .inventory import KEYS, FleetHost, Inventory
from .results import FAILED, INTERRUPTED, NOT_STARTED, OK, FleetResult, HostResult

LineCallback = Callable[[str, str], None]  # (host name, line)
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_ENV_TO_KEY = {k.env: name for name, k in KEYS.items()}


def check_requirements(inventory: Inventory, command: FleetCommand,
                       environ: Mapping[str, str]) -> None:
    """Refuse before anything runs when a host lacks a setting the command needs."""
    for host in inventory.hosts:
        for var in command.requires:
            if not host.setting(var, environ):
                key = _ENV_TO_KEY.get(var, var.lower())
                raise ConfigError(
                    f"{inventory.path}: host {host.name!r} has no {key} for `fleet "
                    f"{command.name}`: set {key} in [hosts.{host.name}] or [defaults], or "
                    f"{var}=… on the command line.")


def default_log_dir(command: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(".state") / "fleet" / f"{stamp}-{command}"


class _Fleet:
    def __init__(self, command: FleetCommand, log_dir: Path, environ: Mapping[str, str],
                 on_line: LineCallback) -> None:
        self.command = command
        self.log_dir = log_dir
        self.environ = dict(environ)
        self.on_line = on_line
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.running: dict[str, subprocess.Popen[str]] = {}
        # Entries that reach the same account's OPS_DIR (two apps on one server) take turns:
        # two setups or agent re-syncs must never pip-install into one venv at once.
        self.turns: dict[tuple[str, ...], threading.Lock] = {}

    # ---- signals (main thread) ---------------------------------------------------------------
    def signal(self, signum: int, _frame: Any) -> None:
        first = not self.stop.is_set()
        self.stop.set()
        with self.lock:
            running = list(self.running.items())
        for _name, proc in running:
            # Always as an interrupt: the single-host commands clean up on SIGINT everywhere
            # (a SIGTERM would end one waiting on SSH before its clean-up ran).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        if first:
            self.on_line("fleet", f"{signal.Signals(signum).name}: no new host starts; "
                         f"waiting for {len(running)} running host(s) to clean up and stop.")

    # ---- one host (a worker thread) ----------------------------------------------------------
    def run_host(self, host: FleetHost) -> HostResult:
        env = host.environment(self.environ)
        key = (env.get("HOST", ""), env.get("SSH_CONFIG", ""), env.get("OPS_DIR", ""))
        with self.lock:
            turn = self.turns.setdefault(key, threading.Lock())
        with turn:
            if self.stop.is_set():
                return HostResult(host.name, host.host, NOT_STARTED)
            return self._run(host, env)

    def _run(self, host: FleetHost, env: dict[str, str]) -> HostResult:
        log_path = self.log_dir / f"{host.name}.log"
        argv = [sys.executable, "-m", "ops.cli", *self.command.argv]
        env["PYTHONUNBUFFERED"] = "1"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as log:
            log_lock = threading.Lock()

            def write(text: str) -> None:
                with log_lock:
                    log.write(text)
                    log.flush()

            write(f"# mmops fleet {self.command.name} on {host.name} ({host.host}), started "
                  f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n"
                  f"# runs: mmops {' '.join(self.command.argv)}\n")
            started_at, t0 = time.time(), time.monotonic()
            self.on_line(host.name, f"started: mmops {' '.join(self.command.argv)}")
            try:
                # Supervising a long-running child with streamed output (process.run_command
                # only runs to completion): same rules — an argument list, an explicit
                # environment, no shell, nothing secret on argv.
                proc = subprocess.Popen(
                    argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                    start_new_session=True,
                )
            except OSError as exc:
                return HostResult(host.name, host.host, FAILED, detail=f"could not start: {exc}",
                                  log=str(log_path))
            with self.lock:
                self.running[host.name] = proc
            if self.stop.is_set():  # a signal that came between the check above and now
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
            stderr_lines: list[str] = []
            assert proc.stderr is not None and proc.stdout is not None
            pump = threading.Thread(target=self._pump, name=f"fleet-{host.name}-stderr",
                                    args=(host.name, proc.stderr, write, stderr_lines),
                                    daemon=True)
            pump.start()
            stdout = proc.stdout.read()
            rc = proc.wait()
            pump.join()
            with self.lock:
                self.running.pop(host.name, None)
            duration, finished_at = time.monotonic() - t0, time.time()
            write(f"# exit {rc} after {duration:.1f}s\n")
            if stdout.strip():
                write("# result (stdout):\n" + stdout + ("" if stdout.endswith("\n") else "\n"))
        result = self._result(host, rc, stdout, stderr_lines, duration, started_at, finished_at,
                              log_path)
        word = result.result.upper() if result.result != OK else "ok"
        code = f" (exit {rc})" if rc else ""
        self.on_line(host.name, f"{word}{code} in {duration:.1f}s"
                     + (f": {result.detail}" if result.result != OK else ""))
        return result

    def _pump(self, name: str, stream: IO[str], write: Callable[[str], None],
              lines: list[str]) -> None:
        for line in stream:
            write(line)
            text = line.rstrip("\n")
            lines.append(text)
            self.on_line(name, text)

    def _result(self, host: FleetHost, rc: int, stdout: str, stderr: list[str],
                duration: float, started_at: float, finished_at: float,
                log_path: Path) -> HostResult:
        common: dict[str, Any] = dict(exit_code=rc, duration_s=round(duration, 3),
                                      started_at=started_at, finished_at=finished_at,
                                      log=str(log_path))
        if rc == 0:
            try:
                output = json.loads(stdout)
                size, detail = self.command.summarize(output)
            except (ValueError, KeyError, TypeError, AttributeError):
                return HostResult(host.name, host.host, FAILED, detail="the command succeeded "
                                  "but its --json result could not be read (see its log)",
                                  **common)
            return HostResult(host.name, host.host, OK, size_bytes=size, detail=detail,
                              output=output, **common)
        state = INTERRUPTED if self.stop.is_set() or rc in (130, -signal.SIGINT) else FAILED
        return HostResult(host.name, host.host, state, detail=_sentence(stderr, rc), **common)


def _sentence(stderr: list[str], rc: int) -> str:
    """The command's own one-sentence error (``error: …``), else its last line."""
    for line in reversed(stderr):
        if line.startswith("error: "):
            return line[len("error: "):].strip()[:400]
    for line in reversed(stderr):
        if line.strip():
            return line.strip()[:400]
    return f"exited with {rc} and no message"


@contextlib.contextmanager
def _signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_fleet(
    inventory: Inventory, command: FleetCommand, *, parallel: int, log_dir: Path,
    environ: Mapping[str, str], on_line: LineCallback = lambda _n, _l: None,
) -> FleetResult:
    """Run ``command`` on every host, at most ``parallel`` at once; a host's failure never stops
    the others. Each host's whole output goes to ``log_dir/<name>.log`` (0600) and, line by
    line, to ``on_line``. Returns one row per host in inventory order."""
    check_requirements(inventory, command, environ)
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(log_dir, 0o700)
    fleet = _Fleet(command, log_dir, environ, on_line)
    workers = max(1, min(parallel, len(inventory.hosts)))
    with _signals(fleet.signal), ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="fleet") as pool:
        futures = [pool.submit(fleet.run_host, host) for host in inventory.hosts]
        pending = set(futures)
        while pending:  # short waits keep the main thread free to take signals
            _done, pending = wait(pending, timeout=0.2)
        results = tuple(f.result() for f in futures)
    return FleetResult(command.name, str(inventory.path), parallel, log_dir, results,
                       interrupted=fleet.stop.is_set())
