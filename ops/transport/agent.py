"""The engine on the server (the remote-ops agent), files moved over SFTP.

``open_agent(settings)`` opens the one SSH connection, brings the agent up to date (telling
``notice`` what it did) and yields an AgentTransport. Requests travel on the agent's stdin as
JSON, never on its command line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import RemoteSettings
from ..engine.results import ProgressCallback
from ..errors import ConfigError, Interrupted, RemoteError
from ..policy.live import LiveStatus
from ..repository.local import LocalRepository
from ..ssh.agent_channel import AgentSession, agent_argv, run_agent
from ..ssh.connection import connect
from ..ssh.transfer import pull, push
from ..steps.engine_side import sha256_of
from ..steps.results import BackupOutcome, BackupRequest, RestoreOutcome, RestoreRequest


class AgentTransport:
    def __init__(self, conn: Any, settings: RemoteSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.label = settings.host_label
        self.safety_location = f"{PurePosixPath(settings.ops_dir) / 'safety'} on {self.label}"

    def _argv(self, command: str, *extra: str) -> list[str]:
        return agent_argv(self.settings.ops_dir, command, "--host", self.label, *extra)

    def status(self) -> LiveStatus:
        st = run_agent(self.conn, self.settings.ops_dir, "status", "--host", self.label,
                       "--env-file", self.settings.env_file)
        return LiveStatus.from_dict(st["status"])

    def version(self) -> dict[str, Any]:
        return run_agent(self.conn, self.settings.ops_dir, "status", "--host", self.label,
                         "--env-file", self.settings.env_file)

    def cleanup(self) -> list[str]:
        return list(run_agent(self.conn, self.settings.ops_dir, "cleanup").get("removed", []))

    def backup(self, request: BackupRequest, dest: LocalRepository,
               progress: ProgressCallback) -> BackupOutcome:
        """The agent backs up (and, with a repository, uploads from the server directly);
        the file is pulled here when there is no repository or KEEP_LOCAL asks for a copy."""
        pub = request.publish
        pull_here = pub is None or pub.keep_local
        if pull_here:
            dest.ensure()
        cleaned = ([str(p) for p in dest.remove_stale_partials()] if pull_here else [])
        cleaned += self.cleanup()
        argv = self._argv("backup", "--env-file", self.settings.env_file)
        with AgentSession(self.conn, argv, on_progress=progress) as s:
            # The request (storage settings included) travels on stdin, never on argv.
            s.send(cmd="request", request=request.to_dict(secrets=True))
            ready = s.expect("ready")
            remote = BackupOutcome.from_dict(ready["backup"])
            local = ""
            if pull_here and remote.path:
                local = str(pull(self.conn, remote.path, dest.path,
                                 expected_sha256=remote.sha256, on_progress=progress))
            s.send(cmd="done")
            s.expect("result")
        d = remote.to_dict()
        d.update(path=local, cleaned=cleaned + remote.cleaned)
        return BackupOutcome.from_dict(d)

    def restore(self, file: Path, request: RestoreRequest,
                progress: ProgressCallback) -> RestoreOutcome:
        self.cleanup()
        digest = sha256_of(file)
        argv = self._argv("restore", "--env-file", self.settings.env_file)
        with AgentSession(self.conn, argv, on_progress=progress) as s:
            ready = s.expect("ready")
            _check_room(ready, file, self.label)
            try:
                name = push(self.conn, file, ready["dir"], on_progress=progress)
            except KeyboardInterrupt:
                raise Interrupted("Interrupted during the upload; nothing was restored (the "
                                  "agent removes the partial upload).") from None
            s.send(cmd="uploaded", name=name, sha256=digest, request=request.to_dict())
            try:
                result = s.expect("result")
            except KeyboardInterrupt:
                raise Interrupted(self._unknown_state(ready, "was interrupted")) from None
            except RemoteError as exc:
                if type(exc) is not RemoteError or "without a result" not in exc.message:
                    raise  # the agent's own report (refused, failed and rolled back, ...)
                raise RemoteError(self._unknown_state(ready, "stopped without a result"),
                                  hint=exc.message) from exc
        return RestoreOutcome.from_dict(result["restore"])

    def _unknown_state(self, ready: dict[str, Any], what: str) -> str:
        database = ready.get("database", "the database")
        return (
            f"The restore on {self.label} {what}: PostgreSQL rolls back a restore that had not "
            f"committed, so {database!r} is either unchanged or fully restored — check with "
            "`mmops remote status` (tables, rows, alembic revision). The safety backup taken "
            f"first, if any, is in {self.safety_location}."
        )


def _check_room(ready: dict[str, Any], file: Path, host: str) -> None:
    """Refuse before pushing a file the agent's temp dir has no room for (``free`` comes with
    the agent's ``ready``; an older agent sends none and the upload itself will tell)."""
    free = ready.get("free")
    size = file.stat().st_size
    if isinstance(free, int) and size > free:
        where = PurePosixPath(str(ready.get("dir", ""))).parent
        raise ConfigError(
            f"The server's disk is too full for this restore: {where} on {host} has {free} bytes "
            f"free but {file.name} needs {size} bytes; nothing was uploaded or restored. Free "
            "space there or set OPS_DIR to a directory on a larger disk."
        )


@contextlib.contextmanager
def open_agent(
    settings: RemoteSettings, *, sync: bool = True, notice: Callable[[str], None] = print
) -> Iterator[AgentTransport]:
    """Connect, re-sync the agent when it differs from this checkout (saying so), yield."""
    from ..provision.install import ensure_current

    with connect(settings.target) as conn:
        for line in settings.target.accepted:
            notice(f"Accepted and saved new host key: {line}")
        if sync:
            res = ensure_current(conn, host=settings.host_label, python=settings.python,
                                 ops_dir=settings.ops_dir)
            if res.action == "installed":
                notice(f"The agent was not installed on the server: installed "
                       f"{res.identity.short} first.")
            elif res.action != "verified":
                notice(
                    f"Drift: the server's agent ({(res.previous_hash or 'none')[:12]}) differed "
                    f"from the local package ({res.identity.short}): re-synced it first."
                )
            settings = settings.with_ops_dir(res.ops_dir)
        yield AgentTransport(conn, settings)
