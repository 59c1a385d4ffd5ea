"""Server-side entry point of the remote-ops agent: ``python -m ops.agent backup|restore|...``.

Runs on the app server inside ``OPS_DIR/venv``; the laptop drives it over one SSH channel.

Protocol (JSON lines):
  * stdout — messages for the laptop: ``{"event": "ready"|"result"|"error", ...}``;
  * stderr — progress ``{"event": "progress", "phase", "done", "total", "item", "message"}``
    and ``{"event": "log", "message"}``;
  * stdin  — commands from the laptop: ``{"cmd": "uploaded"|"done"|"abort", ...}``.
    End of stdin (the laptop hung up, was interrupted or killed) cancels the job; every temp dir
    the job made is removed before the agent exits.

Secrets: DATABASE_URL is read from the env file by the agent itself (directly, or through
``sudo -n cat`` when the file is root-only) and never taken from argv; every text the agent
emits passes through a redaction of the password and the raw URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import pwd
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .dburl import DbUrl, parse_database_url, redact_text
from .errors import ConfigError, Interrupted, OpsError, RemoteError, UsageError

T = TypeVar("T")

SAFETY_KEEP_DEFAULT = 5
TMP_OWNER_FILE = "owner.json"
_SECRETS: list[str | None] = []


# ---- output -----------------------------------------------------------------------------------


class Emitter:
    """Writes JSON lines; redacts secrets; a closed pipe (laptop gone) never raises here."""

    def __init__(self, out: io.TextIOBase | Any = None, err: io.TextIOBase | Any = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.broken = threading.Event()
        self._last_progress = 0.0
        self._last_phase: str | None = None
        self._lock = threading.Lock()

    def _write(self, stream: Any, obj: dict[str, Any]) -> None:
        line = redact_text(json.dumps(obj, default=str), _SECRETS)
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.broken.set()

    def message(self, event: str, **fields: Any) -> None:
        self._write(self.out, {"event": event, **fields})

    def log(self, message: str) -> None:
        self._write(self.err, {"event": "log", "message": message})

    def progress(self, p: Any) -> None:
        """Engine Progress events, throttled to ~10/s except phase changes."""
        now = time.monotonic()
        if p.phase == self._last_phase and now - self._last_progress < 0.1:
            return
        self._last_phase, self._last_progress = p.phase, now
        self._write(self.err, {"event": "progress", **p.to_dict()})


# ---- stdin commands and cancellation ----------------------------------------------------------


class Inbox:
    """Reads command lines from stdin in a thread; EOF fires the cancel callback once."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdin
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.eof = threading.Event()
        self._on_eof: Callable[[], None] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="agent-stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.stream:
                line = line.strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = {"cmd": line}
                self.queue.put(msg if isinstance(msg, dict) else {"cmd": str(msg)})
        except (OSError, ValueError):
            pass
        with self._lock:
            self.eof.set()
            callback = self._on_eof
        self.queue.put(None)
        if callback is not None:
            callback()

    def on_eof(self, callback: Callable[[], None] | None) -> None:
        with self._lock:
            self._on_eof = callback
            fire = callback is not None and self.eof.is_set()
        if fire and callback is not None:
            callback()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The next command; raises Interrupted when the laptop hung up."""
        try:
            msg = self.queue.get(timeout=timeout)
        except queue.Empty as exc:
            raise RemoteError("The laptop did not answer in time; the job was abandoned.") from exc
        if msg is None:
            self.queue.put(None)
            raise Interrupted("The laptop disconnected; the job was cancelled and cleaned up.")
        if msg.get("cmd") == "abort":
            raise Interrupted("Cancelled by the operator; nothing was changed.")
        return msg


def run_cancellable(
    job: Callable[[], Awaitable[T]], inbox: Inbox | None, *, cancel_on_eof: bool = True
) -> T:
    """Run ``job`` on an event loop; SIGTERM/SIGHUP/SIGINT or end of stdin cancel it.

    One-shot reads (status, doctor) pass ``cancel_on_eof=False``: their stdin is simply closed.
    """

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        def cancel() -> None:
            loop.call_soon_threadsafe(task.cancel)

        if inbox is not None and cancel_on_eof:
            inbox.on_eof(cancel)
        try:
            return await job()
        finally:
            if inbox is not None and cancel_on_eof:
                inbox.on_eof(None)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError as exc:
        raise Interrupted(
            "The job was cancelled (the laptop disconnected or the agent was signalled); "
            "its temp files were removed."
        ) from exc


# ---- env file ---------------------------------------------------------------------------------


def _whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def read_env_text(path: Path) -> str:
    """The env file's text, directly or via ``sudo -n cat`` when only root may read it."""
    try:
        return path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"The env file {path} does not exist on the server.",
            hint="Create it with a DATABASE_URL=... line (see deploy/markdown-manager.env.example)"
            " or point ENV_FILE at the right file.",
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"The env file {path} on the server is a directory.") from exc
    except PermissionError:
        pass
    try:
        res = subprocess.run(
            ["sudo", "-n", "cat", "--", str(path)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(
            f"The env file {path} is not readable by {_whoami()} and sudo is not available.",
            hint=f"Make it readable by {_whoami()} (e.g. a group with chmod 640).",
        ) from exc
    if res.returncode == 0:
        return res.stdout
    if "No such file" in res.stderr:
        raise ConfigError(f"The env file {path} does not exist on the server.")
    raise ConfigError(
        f"The env file {path} is not readable by {_whoami()} and `sudo -n cat` was refused.",
        hint=f"Allow {_whoami()} to run `sudo -n cat {path}` without a password, or make the "
        "file readable by it (e.g. a group with chmod 640).",
    )


def read_database_url(env_file: Path) -> DbUrl:
    from dotenv import dotenv_values

    text = read_env_text(env_file)
    raw = dotenv_values(stream=io.StringIO(text), interpolate=False).get("DATABASE_URL")
    if not raw:
        raise ConfigError(
            f"The env file {env_file} on the server does not define DATABASE_URL.",
            hint="Add a line DATABASE_URL=postgresql://user:password@host:5432/dbname.",
        )
    _SECRETS.append(raw)
    url = parse_database_url(raw)
    _SECRETS.append(url.password)
    return url


# ---- private dirs -----------------------------------------------------------------------------


def ops_subdir(ops_dir: Path, name: str) -> Path:
    path = ops_dir / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@contextlib.contextmanager
def private_tmpdir(ops_dir: Path, prefix: str) -> Any:
    """A 0700 dir with an unpredictable name under OPS_DIR/tmp, removed however we leave."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=ops_subdir(ops_dir, "tmp")))
    (path / TMP_OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pid_is_agent(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ops.agent" in cmdline


def stale_tmpdirs(tmp_root: Path, *, now: float | None = None, grace_s: float = 3600) -> list[Path]:
    """Temp dirs whose agent is gone (or, without an owner file, older than ``grace_s``)."""
    now = time.time() if now is None else now
    stale: list[Path] = []
    if not tmp_root.is_dir():
        return stale
    for entry in sorted(tmp_root.iterdir()):
        if not entry.is_dir():
            continue
        try:
            owner = json.loads((entry / TMP_OWNER_FILE).read_text())
            alive = _pid_is_agent(int(owner["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            alive = now - entry.stat().st_mtime < grace_s
        if not alive:
            stale.append(entry)
    return stale


def select_safety_to_delete(names: Sequence[str], keep: int) -> list[str]:
    """Retention for safety backups: names embed a UTC timestamp; keep the newest ``keep``."""
    ordered = sorted(names, reverse=True)
    return sorted(ordered[max(keep, 0) :])


# ---- commands ---------------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from . import __version__
    from .remote.identity import content_hash

    return {
        "version": __version__,
        "hash": content_hash(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
    }


def cmd_cleanup(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    removed = []
    for path in stale_tmpdirs(Path(args.ops_dir) / "tmp"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return {"removed": removed}


async def _live_status(url: DbUrl) -> dict[str, Any]:
    from .engine.connection import connection

    async with connection(url, application_name="mmops agent status") as conn:
        version = await conn.fetchval("SHOW server_version")
        rows = await conn.fetch(
            """
            SELECT n.nspname AS schema, c.relname AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                              AND d.deptype = 'e')
            ORDER BY 1, 2
            """
        )
        tables = []
        revision = None
        for r in rows:
            ident = f'"{r["schema"].replace(chr(34), chr(34) * 2)}".' \
                f'"{r["name"].replace(chr(34), chr(34) * 2)}"'
            count = await conn.fetchval(f"SELECT count(*) FROM {ident}")
            tables.append({"schema": r["schema"], "name": r["name"], "rows": int(count)})
            if r["name"] == "alembic_version":
                vals = await conn.fetch(f"SELECT version_num FROM {ident} ORDER BY 1")
                revision = ",".join(str(v[0]) for v in vals) or None
        return {
            "database": url.database,
            "server": url.redacted(),
            "server_version": str(version),
            "alembic_revision": revision,
            "tables": tables,
        }


def cmd_status(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    url = read_database_url(Path(args.env_file))
    status = run_cancellable(lambda: _live_status(url), inbox, cancel_on_eof=False)
    status.update(cmd_version(args, out, inbox))
    return status


def _check(name: str, ok: bool, detail: str, fix: str | None = None) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": None if ok else fix}


def cmd_doctor(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    checks = []
    env_file = Path(args.env_file)
    url = None
    try:
        read_env_text(env_file)
        checks.append(_check("env file", True, f"{env_file} is readable"))
        try:
            url = read_database_url(env_file)
            checks.append(_check("DATABASE_URL", True, f"set ({url.redacted()})"))
        except OpsError as exc:
            checks.append(_check("DATABASE_URL", False, str(exc), exc.hint or str(exc)))
    except OpsError as exc:
        checks.append(_check("env file", False, exc.message, exc.hint or str(exc)))
        checks.append(_check("DATABASE_URL", False, "not checked: no env file", "fix the env file"))
    if url is not None:
        try:
            status = run_cancellable(lambda: _live_status(url), inbox, cancel_on_eof=False)
            checks.append(
                _check(
                    "database",
                    True,
                    f"connected to {status['database']} (PostgreSQL {status['server_version']}, "
                    f"{len(status['tables'])} tables, alembic {status['alembic_revision']})",
                )
            )
        except OpsError as exc:
            checks.append(_check("database", False, str(exc), "fix DATABASE_URL or the server"))
    else:
        checks.append(_check("database", False, "not checked: no DATABASE_URL", "see above"))
    tmp = ops_subdir(Path(args.ops_dir), "tmp")
    free = shutil.disk_usage(tmp).free
    checks.append(
        _check(
            "free disk",
            free > 1 << 30,
            f"{free / (1 << 30):.1f} GiB free in {tmp}",
            f"free space in {tmp}: a backup needs about the size of its file there",
        )
    )
    return {"checks": checks}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cmd_backup(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from .engine.backup import backup, default_backup_name

    url = read_database_url(Path(args.env_file))
    ops_dir = Path(args.ops_dir)
    with private_tmpdir(ops_dir, "backup-") as tmp:
        path = tmp / default_backup_name(url.database)
        tables = args.tables.split(",") if args.tables else None
        result = run_cancellable(
            lambda: backup(url, path, jobs=args.jobs, tables=tables, progress=out.progress),
            inbox,
        )
        final = Path(result.path)
        out.message(
            "ready",
            path=str(final),
            sha256=_sha256(final),
            size=final.stat().st_size,
            backup=result.to_dict(),
        )
        # Keep the temp dir until the laptop has pulled the file (or hung up).
        inbox.wait(timeout=args.pull_timeout)
    return {"removed": str(tmp)}


def _restore_check_rows(
    manifest: dict[str, Any], live: dict[str, Any], only: Sequence[str] | None = None
) -> list[str]:
    """Tables whose live row count differs from the backup's (empty list: all equal).

    ``only`` (``schema.name``): check just the tables the restore loaded (a ``--tables``
    restore leaves the others as they were, so their counts say nothing about it).
    """
    counts = {(t["schema"], t["name"]): t["rows"] for t in live["tables"]}
    wanted = None if only is None else set(only)
    bad = []
    for t in manifest.get("tables", []):
        if wanted is not None and f"{t['schema']}.{t['name']}" not in wanted:
            continue
        got = counts.get((t["schema"], t["name"]))
        if got != t.get("rows"):
            bad.append(f"{t['schema']}.{t['name']}: backup {t.get('rows')} rows, live {got}")
    return bad


UPLOAD_KINDS = {
    "mmops": "a .mmops backup",
    "legacy-json": "an old JSON backup",
    "sql-script": "a plain SQL dump",
}


def detect_upload(path: Path, expected: str = "auto") -> tuple[str, Any]:
    """(kind, foreign restore function or None for an archive) of the uploaded file.

    ``expected`` is what the laptop found; the server reading the same bytes differently
    means the two sides run different code, so nothing is restored.
    """
    from .engine.foreign import restore_legacy_file, restorer_for

    foreign = restorer_for(path)
    if foreign is None:
        kind = "mmops"
    else:
        kind = "legacy-json" if foreign is restore_legacy_file else "sql-script"
    if expected not in ("auto", kind):
        raise RemoteError(
            f"The uploaded file reads as {UPLOAD_KINDS[kind]} on the server but as "
            f"{UPLOAD_KINDS.get(expected, expected)} on the laptop; nothing was restored."
        )
    return kind, foreign


def cmd_restore(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """Receive a file, check it, take a safety backup, restore it in one transaction.

    A .mmops archive is verified and restored by the engine (``--tables``: only those,
    data-only) and the restored tables' row counts are compared with its manifest. An old
    JSON backup or a plain SQL dump is restored by ``engine.foreign`` (one transaction too);
    there is no manifest, so the result says the row-count check was skipped.
    """
    from .archive import read_manifest, verify_archive
    from .engine.backup import backup, default_backup_name
    from .engine.restore import restore
    from .engine.results import Progress, RestoreMode
    from .errors import RestoreFailed

    url = read_database_url(Path(args.env_file))
    ops_dir = Path(args.ops_dir)
    tables = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
    with private_tmpdir(ops_dir, "restore-") as tmp:
        out.message("ready", dir=str(tmp), database=url.database)
        msg = inbox.wait(timeout=args.upload_timeout)
        name = str(msg.get("name", ""))
        if msg.get("cmd") != "uploaded" or not name or Path(name).name != name:
            raise UsageError("The laptop sent no valid upload notice; nothing was changed.")
        archive = tmp / name
        if not archive.is_file():
            raise RemoteError(f"The uploaded file {name} is missing on the server.")
        out.progress(Progress("verify", message="checking the uploaded file"))
        if _sha256(archive) != msg.get("sha256"):
            raise RemoteError("The uploaded file's sha256 differs from the laptop's; not restored.")
        kind, foreign = detect_upload(archive, args.kind)
        manifest: dict[str, Any] = {}
        if foreign is None:
            verify_archive(archive)
            manifest = read_manifest(archive)
        elif tables:
            raise UsageError(
                f"--tables applies to .mmops backups; {name} is {UPLOAD_KINDS[kind]}, restored "
                "whole. Nothing was changed."
            )

        safety_dir = ops_subdir(ops_dir, "safety")
        safety_path = safety_dir / ("safety-" + default_backup_name(url.database))

        async def run_restore() -> tuple[dict[str, Any], list[str] | None]:
            if foreign is not None:
                summary = await foreign(url, archive, lock_timeout=args.lock_timeout,
                                        force=args.force, progress=out.progress)
                return summary, None
            if args.mode != "auto":
                mode = RestoreMode(args.mode)
            elif tables:
                mode = RestoreMode.DATA_ONLY
            else:
                status = await _live_status(url)
                mode = RestoreMode.REPLACE if status["tables"] else RestoreMode.CREATE
            result = await restore(
                url,
                archive,
                mode=mode,
                lock_timeout=args.lock_timeout,
                force=args.force,
                tables=tables or None,
                progress=out.progress,
            )
            return result.to_dict(), list(result.plan.tables_to_load)

        async def job() -> Any:
            out.progress(Progress("safety", message=f"safety backup of {url.database}"))
            safety = await backup(url, safety_path, jobs=args.jobs, progress=out.progress)
            _prune_safety(safety_dir, args.keep_safety)
            try:
                summary, loaded = await run_restore()
            except OpsError as exc:
                raise type(exc)(
                    f"{exc.message} The safety backup is {safety.path} (on the server).",
                    hint=exc.hint,
                ) from exc
            after = await _live_status(url)
            return safety, summary, loaded, after

        safety, summary, loaded, after = run_cancellable(job, inbox)
        if foreign is not None:
            return {
                "kind": kind,
                "restore": summary,
                "safety_backup": safety.path,
                "alembic_revision": after["alembic_revision"],
                "rows_checked": None,
                "row_check": f"skipped: {UPLOAD_KINDS[kind]} has no manifest to compare row "
                "counts with",
            }
        mismatches = _restore_check_rows(manifest, after, loaded if tables else None)
        if mismatches:
            raise RestoreFailed(
                "Row counts after the restore differ from the backup: " + "; ".join(mismatches)
                + f". The safety backup is {safety.path}."
            )
        checked = set(loaded or ()) if tables else None
        return {
            "kind": kind,
            "restore": summary,
            "safety_backup": safety.path,
            "alembic_revision": after["alembic_revision"],
            "rows_checked": sum(
                t["rows"] for t in after["tables"]
                if checked is None or f"{t['schema']}.{t['name']}" in checked
            ),
            "row_check": "ok" if checked is None else f"ok for the {len(checked)} tables restored",
        }


def _prune_safety(safety_dir: Path, keep: int) -> None:
    names = [p.name for p in safety_dir.glob("safety-*.mmops")]
    for name in select_safety_to_delete(names, keep):
        (safety_dir / name).unlink(missing_ok=True)


# ---- main -------------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[argparse.Namespace, Emitter, Inbox], dict[str, Any]]] = {
    "version": cmd_version,
    "status": cmd_status,
    "doctor": cmd_doctor,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "cleanup": cmd_cleanup,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--ops-dir", default=os.path.expanduser("~/markdown-manager-ops"))
        if name in {"status", "doctor", "backup", "restore"}:
            p.add_argument("--env-file", default="/etc/markdown-manager.env")
        if name in {"backup", "restore"}:
            p.add_argument("--jobs", type=int, default=2)
        if name == "backup":
            p.add_argument("--tables", default=None)
            p.add_argument("--pull-timeout", type=float, default=24 * 3600)
        if name == "restore":
            p.add_argument("--mode", default="auto", choices=["auto", "create", "replace",
                                                                "data-only"])
            p.add_argument("--lock-timeout", type=float, default=30.0)
            p.add_argument("--force", action="store_true")
            p.add_argument("--keep-safety", type=int, default=SAFETY_KEEP_DEFAULT)
            p.add_argument("--upload-timeout", type=float, default=24 * 3600)
            p.add_argument("--kind", default="auto", choices=["auto", *UPLOAD_KINDS])
            p.add_argument("--tables", default=None,
                           help="Comma-separated table patterns: restore only those, data-only.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    out = Emitter()
    inbox = Inbox()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        result = COMMANDS[args.command](args, out, inbox)
    except OpsError as exc:
        out.message("error", kind=type(exc).__name__, message=exc.message, hint=exc.hint,
                    exit_code=exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        out.message("error", kind="Interrupted", message="The agent was interrupted.",
                    hint=None, exit_code=130)
        return 130
    except Exception as exc:  # an agent bug: report it as one sentence, details on stderr
        out.log(traceback.format_exc())
        out.message("error", kind="RemoteError",
                    message=f"The server-side agent failed: {type(exc).__name__}: {exc}",
                    hint=None, exit_code=RemoteError.exit_code)
        return RemoteError.exit_code
    out.message("result", started=started, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
