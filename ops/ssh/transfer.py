"""Move backup files between laptop and server without ever exposing a partial file.

Pull: the file is received into an anonymous file in the destination dir (``O_TMPFILE``; where
the filesystem lacks it, a hidden ``.NAME.partial-PID-RANDOM`` file), created 0600 whatever
mode the remote file has, fsynced, its sha256 compared with the agent's and its archive
checksums verified, and only then linked under its final name. A killed process leaves no file
under a final name; a hidden partial file left by a fallback carries our pid, so the next run's
``LocalRepository.remove_stale_partials`` removes it.
Push: the file goes to ``.NAME.partial`` in the agent's private 0700 dir and is renamed when
complete; the agent re-verifies it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import paramiko

from ..engine.results import Progress
from ..errors import ArchiveError, ConfigError, OpsError, RemoteError
from .reason import reason

CHUNK = 1 << 20
ProgressSink = Callable[[Progress], None]


class _Incoming:
    """A private file in ``directory`` that gets a name only on ``commit``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.temp_path: Path | None = None
        try:
            self.fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (AttributeError, OSError):
            self.temp_path = directory / f".{name}.partial-{os.getpid()}-{secrets.token_hex(6)}"
            self.fd = os.open(self.temp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(self.fd, 0o600)

    @property
    def read_path(self) -> Path:
        return self.temp_path or Path(f"/proc/self/fd/{self.fd}")

    def commit(self, final: Path) -> None:
        os.fsync(self.fd)
        if self.temp_path is None:
            # A dir fd makes CPython call linkat(AT_SYMLINK_FOLLOW), which links the anonymous
            # file itself; fails if ``final`` exists: no clobber.
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.link(f"/proc/self/fd/{self.fd}", final, src_dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        else:
            os.link(self.temp_path, final)
            self.temp_path.unlink()
            self.temp_path = None
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self.temp_path is not None:
            self.temp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _incoming(directory: Path, name: str) -> Iterator[_Incoming]:
    inc = _Incoming(directory, name)
    try:
        yield inc
    finally:
        inc.discard()


def pull(
    conn: Any,
    remote_path: str,
    dest_dir: Path,
    *,
    expected_sha256: str,
    on_progress: ProgressSink | None = None,
) -> Path:
    """Copy ``remote_path`` into ``dest_dir`` (same name), checked, 0600; returns the path.

    ``expected_sha256`` is the server's digest of the file (the writer's, which the server
    checked its file against): the pulled bytes must hash to it, and the local copy passes the
    same check as a freshly written backup (structure, and its bytes read back hash to it).
    """
    from ..archive import check_written

    emit = on_progress or (lambda _p: None)
    name = PurePosixPath(remote_path).name
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    if final.exists():
        raise RemoteError(f"{final} already exists; not overwriting it.")
    sftp = conn.sftp()
    size = done = 0
    try:
        size = sftp.stat(remote_path).st_size or 0
        digest = hashlib.sha256()
        with _incoming(dest_dir, name) as inc, sftp.open(remote_path, "rb") as remote:
            remote.prefetch(size)
            while True:
                block = remote.read(CHUNK)
                if not block:
                    break
                try:
                    _write_all(inc.fd, block)
                except OSError as exc:
                    if exc.errno in _DISK_FULL:
                        raise ConfigError(
                            f"The disk holding {dest_dir} is full ({exc.strerror}) after "
                            f"{done} of {size} bytes of {name} were pulled, "
                            f"{_free(dest_dir)} bytes free; the database was not changed and "
                            "no partial file was kept. Free space there or choose another "
                            "BACKUP_DIR."
                        ) from exc
                    raise
                digest.update(block)
                done += len(block)
                emit(Progress("transfer", done=done, total=size, item=name))
            if done != size or digest.hexdigest() != expected_sha256:
                raise RemoteError(
                    f"The pulled copy of {name} differs from the server's file "
                    f"(size {done}/{size} or sha256 mismatch); nothing was kept."
                )
            emit(Progress("verify", message=f"checking {name}"))
            try:
                check_written(inc.read_path, expected_sha256)
            except ArchiveError as exc:
                raise ArchiveError(f"The pulled backup {name} failed verification: {exc}") from exc
            inc.commit(final)
    except _LOST as exc:
        if isinstance(exc, OSError) and not _is_connection_error(exc):
            raise RemoteError(f"Pulling {name} from the server failed: {reason(exc)}.") from exc
        raise RemoteError(
            f"The SSH connection to the server was lost while pulling {name} ({done} of {size} "
            "bytes); no partial file was kept and the database was not changed. Run the backup "
            "again."
        ) from exc
    return final


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def push(
    conn: Any,
    local_path: Path,
    remote_dir: str,
    *,
    on_progress: ProgressSink | None = None,
) -> str:
    """Upload ``local_path`` into ``remote_dir`` (0600, temp name, rename); returns the name."""
    emit = on_progress or (lambda _p: None)
    name = local_path.name
    partial = str(PurePosixPath(remote_dir) / f".{name}.partial")
    final = str(PurePosixPath(remote_dir) / name)
    size = local_path.stat().st_size
    sftp = conn.sftp()
    done = 0
    try:
        with local_path.open("rb") as src, sftp.open(partial, "wb") as dst:
            dst.chmod(0o600)
            dst.set_pipelined(True)
            for block in iter(lambda: src.read(CHUNK), b""):
                dst.write(block)
                done += len(block)
                emit(Progress("transfer", done=done, total=size, item=name))
        sftp.posix_rename(partial, final)
    except _LOST as exc:
        with contextlib.suppress(Exception):
            sftp.remove(partial)  # frees the space a full disk needs back at once
        raise _upload_failed(name, remote_dir, done, size, exc) from exc
    return name


def _upload_failed(name: str, remote_dir: str, done: int, size: int,
                   exc: BaseException) -> OpsError:
    if not isinstance(exc, OSError) or _is_connection_error(exc):
        return RemoteError(
            f"The SSH connection to the server was lost while uploading {name} ({done} of "
            f"{size} bytes); nothing was restored. Run the restore again."
        )
    # OpenSSH's sftp-server reports ENOSPC/EDQUOT as a bare SSH_FX_FAILURE ("Failure"): the
    # protocol (v3) has no disk-full code, so a failure while writing is most likely that.
    if exc.errno in _DISK_FULL or str(exc).strip() == "Failure":
        return ConfigError(
            f"Uploading {name} to {remote_dir} on the server failed after {done} of {size} "
            f"bytes (SFTP: {exc.strerror or exc}): the server's disk may be full; nothing was "
            "restored. Free space there or set OPS_DIR to a directory on a larger disk."
        )
    return RemoteError(
        f"Uploading {name} to {remote_dir} on the server failed after {done} of {size} bytes: "
        f"{exc.strerror or exc}; nothing was restored."
    )


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_LOST = (OSError, EOFError, paramiko.SSHException)


def _is_connection_error(exc: OSError) -> bool:
    """A dropped transport (socket errors, paramiko's closed-channel ``OSError("Socket is
    closed")``), as opposed to an error the SFTP server answered with."""
    return isinstance(exc, (ConnectionError, socket.timeout)) or "closed" in str(exc).lower()


def _quiet_prefetch_thread(args: threading.ExceptHookArgs) -> None:
    """paramiko's prefetch thread dies with a lost connection and Python would print its
    traceback; ``pull`` reports that loss as one sentence, so only that thread's connection
    errors are dropped here. Everything else goes to the previous hook."""
    thread = args.thread
    if (thread is not None and thread.name.endswith("(_prefetch_thread)")
            and issubclass(args.exc_type, _LOST)):
        return
    _previous_excepthook(args)


_previous_excepthook = threading.excepthook
threading.excepthook = _quiet_prefetch_thread


def _free(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0
