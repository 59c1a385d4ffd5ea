"""The agent's commands: thin handlers that call the same ``jobs`` steps every mode uses."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import aio
from .._version import __version__
from ..errors import OpsError, RemoteError, UsageError
from .envfile import read_database_url, read_env_text
from .protocol import Emitter, Inbox
from .schedule import SCHEDULE_COMMANDS
from .workspace import ops_subdir, private_tmpdir, stale_tmpdirs

Handler = Callable[[argparse.Namespace, Emitter, Inbox], dict[str, Any]]


def _cancellable(inbox: Inbox) -> dict[str, Any]:
    """Keyword arguments for ``aio.run``: end of stdin (the laptop went away) cancels too."""
    return {"on_start": inbox.on_eof, "on_stop": lambda: inbox.on_eof(None)}


def cmd_version(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..package_identity import content_hash

    return {"version": __version__, "hash": content_hash(),
            "python": sys.version.split()[0], "executable": sys.executable}


def cmd_cleanup(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """Remove what killed runs left: temp dirs of dead agents, partial safety backups."""
    from ..repository.local import LocalRepository

    removed = []
    for path in stale_tmpdirs(Path(args.ops_dir) / "tmp"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    safety = LocalRepository(Path(args.ops_dir) / "safety")
    removed += [str(p) for p in safety.remove_stale_partials()]
    return {"removed": removed}


def cmd_status(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..steps.status import read_live_status

    url = read_database_url(Path(args.env_file))
    status = aio.run(lambda: read_live_status(url))
    return {"status": status.to_dict(), **cmd_version(args, out, inbox)}


def _check(name: str, ok: bool, detail: str, fix: str | None = None) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": None if ok else fix}


def cmd_doctor(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    from ..steps.status import read_live_status

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
            checks.append(_check("DATABASE_URL", False, exc.message, exc.hint or exc.message))
    except OpsError as exc:
        checks.append(_check("env file", False, exc.message, exc.hint or exc.message))
        checks.append(_check("DATABASE_URL", False, "not checked: no env file", "fix the env file"))
    if url is not None:
        db = url
        try:
            status = aio.run(lambda: read_live_status(db))
            checks.append(_check(
                "database", True,
                f"connected to {status.database} (PostgreSQL {status.server_version}, "
                f"{len(status.tables)} tables, alembic {status.alembic_revision})",
            ))
        except OpsError as exc:
            checks.append(_check("database", False, str(exc),
                                 "check that the database server runs and DATABASE_URL's "
                                 "host, port, user and password are right"))
    else:
        checks.append(_check("database", False, "not checked: no DATABASE_URL", "see above"))
    tmp = ops_subdir(Path(args.ops_dir), "tmp")
    free = shutil.disk_usage(tmp).free
    checks.append(_check(
        "free disk", free > 1 << 30, f"{free / (1 << 30):.1f} GiB free in {tmp}",
        f"free space in {tmp}: a backup needs about the size of its file there",
    ))
    return {"checks": checks}


def cmd_backup(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """Back up into a private temp dir, announce the verified file, wait until it was pulled."""
    from ..repository.local import LocalRepository
    from ..steps.engine_side import backup_and_publish
    from ..steps.results import BackupRequest

    url = read_database_url(Path(args.env_file))
    request = BackupRequest.from_dict(inbox.wait(timeout=60).get("request") or {})
    if request.publish is not None:
        # Storage settings: the server's REPO_ENV_FILE (default: the app's env file), then
        # whatever the laptop handed over on stdin.
        from dataclasses import replace

        from ..steps.publish import storage_settings

        pub = request.publish
        server = storage_settings(read_env_text(Path(pub.repo_env_file or args.env_file)))
        request = replace(request, publish=replace(
            pub, repo_env_file=None, storage_env={**server, **pub.storage_env}))
    with private_tmpdir(Path(args.ops_dir), "backup-") as tmp:
        outcome = aio.run(
            lambda: backup_and_publish(url, LocalRepository(tmp), request, host=args.host,
                                       progress=out.progress, checksum=True, drop_local=False,
                                       unsent=LocalRepository(Path(args.ops_dir) / "unsent")),
            **_cancellable(inbox),
        )
        out.message("ready", backup=outcome.to_dict())
        inbox.wait(timeout=args.pull_timeout)  # keep the file until the laptop has it
    return {"removed": str(tmp)}


def cmd_restore(args: argparse.Namespace, out: Emitter, inbox: Inbox) -> dict[str, Any]:
    """Receive a file, check it, then the shared steps: safety backup, restore, row check."""
    from ..archive import verify_archive
    from ..engine.results import Progress
    from ..interop.detect import FileKind, detect_kind
    from ..repository.local import LocalRepository
    from ..steps.engine_side import restore_from, sha256_of
    from ..steps.results import RestoreRequest

    url = read_database_url(Path(args.env_file))
    ops_dir = Path(args.ops_dir)
    with private_tmpdir(ops_dir, "restore-") as tmp:
        # The laptop refuses before pushing a file that cannot fit here.
        out.message("ready", dir=str(tmp), database=url.database,
                    free=shutil.disk_usage(tmp).free)
        msg = inbox.wait(timeout=args.upload_timeout)
        name = str(msg.get("name", ""))
        if msg.get("cmd") != "uploaded" or not name or Path(name).name != name:
            raise UsageError("The laptop sent no valid upload notice; nothing was changed.")
        request = RestoreRequest.from_dict(msg["request"])
        upload = tmp / name
        if not upload.is_file():
            raise RemoteError(f"The uploaded file {name} is missing on the server.")
        out.progress(Progress("verify", message="checking the uploaded file"))
        if sha256_of(upload) != msg.get("sha256"):
            raise RemoteError("The uploaded file's sha256 differs from the laptop's; not restored.")
        kind = detect_kind(upload)
        if kind.value != request.kind:
            raise RemoteError(
                f"The uploaded file reads as {kind.label} on the server but as "
                f"{FileKind(request.kind).label} on the laptop (different versions?); nothing "
                "was restored."
            )
        if kind is FileKind.ARCHIVE:
            verify_archive(upload)
        safety = LocalRepository(ops_subdir(ops_dir, "safety"))
        outcome = aio.run(
            lambda: restore_from(url, upload, request, safety, host=args.host,
                                 progress=out.progress, safety_note=" (on the server)"),
            **_cancellable(inbox),
        )
    return {"restore": outcome.to_dict()}


COMMANDS: dict[str, Handler] = {
    "version": cmd_version,
    "status": cmd_status,
    "doctor": cmd_doctor,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "cleanup": cmd_cleanup,
    **SCHEDULE_COMMANDS,
}
