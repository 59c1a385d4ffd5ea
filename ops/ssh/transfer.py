"""Move backup files between laptop and server without ever exposing a partial file.

Pull: the file is received into an anonymous file in the destination dir (``O_TMPFILE``; where
the filesystem lacks it, a hidden ``.NAME.partial-PID-RANDOM`` file), created 0600 whatever
mode the remote file has, fsynced, its sha256 compared with the agent's and its archive
checksums verified, and only then linked under its final name. A killed process leaves no file
under a final name; a hidden partial file left by a fallback is removed by the next run.
Push: the file goes to ``.NAME.partial`` in the agent's private 0700 dir and is renamed when
complete; the agent re-verifies it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..engine.results import Progress
from ..errors import ArchiveError, RemoteError

CHUNK = 1 << 20
_PARTIAL_RE = re.compile(r"^\..+\.partial-(\d+)-[0-9a-f]+$")

ProgressSink = Callable[[Progress], None]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(directory: Path) -> list[Path]:
    """Hidden partial files from a killed earlier run (their pid is gone)."""
    removed = []
    if directory.is_dir():
        for entry in directory.iterdir():
            m = _PARTIAL_RE.match(entry.name)
            if m and not _pid_alive(int(m.group(1))):
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


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
    """Copy ``remote_path`` into ``dest_dir`` (same name), verified, 0600; returns the path."""
    from ..archive import verify_archive

    emit = on_progress or (lambda _p: None)
    name = PurePosixPath(remote_path).name
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    if final.exists():
        raise RemoteError(f"{final} already exists; not overwriting it.")
    sftp = conn.sftp()
    try:
        size = sftp.stat(remote_path).st_size or 0
        digest = hashlib.sha256()
        with _incoming(dest_dir, name) as inc, sftp.open(remote_path, "rb") as remote:
            remote.prefetch(size)
            done = 0
            while True:
                block = remote.read(CHUNK)
                if not block:
                    break
                _write_all(inc.fd, block)
                digest.update(block)
                done += len(block)
                emit(Progress("transfer", done=done, total=size, item=name))
            if done != size or digest.hexdigest() != expected_sha256:
                raise RemoteError(
                    f"The pulled copy of {name} differs from the server's file "
                    f"(size {done}/{size} or sha256 mismatch); nothing was kept."
                )
            emit(Progress("verify", message=f"verifying {name}"))
            try:
                verify_archive(inc.read_path)
            except ArchiveError as exc:
                raise ArchiveError(f"The pulled backup {name} failed verification: {exc}") from exc
            inc.commit(final)
    except OSError as exc:
        raise RemoteError(f"Pulling {name} from the server failed: {exc}") from exc
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
    try:
        with local_path.open("rb") as src, sftp.open(partial, "wb") as dst:
            dst.chmod(0o600)
            dst.set_pipelined(True)
            done = 0
            for block in iter(lambda: src.read(CHUNK), b""):
                dst.write(block)
                done += len(block)
                emit(Progress("transfer", done=done, total=size, item=name))
        sftp.posix_rename(partial, final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            sftp.remove(partial)
        raise RemoteError(f"Uploading {name} to the server failed: {exc}") from exc
    return name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
