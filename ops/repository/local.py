"""A local directory as a repository: BACKUP_DIR on the laptop, OPS_DIR/safety on a server.

Files are 0600 in a 0700 directory. A new file is written under a hidden name
(``.NAME.partial-PID-RANDOM``) and linked under its final name only on commit, so a killed run
never leaves a file that looks like a backup; ``remove_stale_partials`` removes what such runs
left (their pid is gone, or the file has not changed for an hour).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import secrets
import time
import typing
from collections.abc import Iterator
from pathlib import Path

from ..errors import RepositoryError
from ..process import pid_alive
from .base import Entry, NameInUse, ObjectMissing

_PARTIAL_RE = re.compile(r"^\..+\.partial-(?:(\d+)-)?[0-9a-f]+$")
_RESERVED_RE = re.compile(r"^\..+\.reserved$")
STALE_AFTER_S = 3600
LOCK_FILE = ".lock"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) 0700 if missing; an existing dir keeps its mode."""
    if not path.is_dir():
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(path, 0o700)
        except OSError as exc:
            raise RepositoryError(
                f"Cannot create the backup directory {path}: {exc.strerror or exc}."
            ) from exc
    return path


class _FileReader:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size

    def read_at(self, offset: int, size: int) -> bytes:
        parts = []
        while size > 0:
            part = os.pread(self.fd, size, offset)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            size -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _FileSink:
    def __init__(self, directory: Path, name: str) -> None:
        self.final = directory / name
        self.partial = directory / f".{name}.partial-{os.getpid()}-{secrets.token_hex(6)}"
        if self.final.exists():
            raise RepositoryError(f"{self.final} already exists; not overwriting it.")
        try:
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o600)
        except OSError as exc:
            raise RepositoryError(f"Cannot create a file in {directory}: {exc.strerror}.") from exc
        os.fchmod(fd, 0o600)
        self.file = os.fdopen(fd, "wb")

    @property
    def path(self) -> Path:
        """Where the bytes are until commit (readable, e.g. to verify before publishing)."""
        return self.partial

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.file.write(data)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            os.link(self.partial, self.final)  # fails if the final name exists: no clobber
        except FileExistsError as exc:
            self.abort()
            raise RepositoryError(f"{self.final} already exists; not overwriting it.") from exc
        self.partial.unlink()
        dir_fd = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.partial.unlink(missing_ok=True)


class LocalRepository:
    """Backups as files in one directory (not recursive: ``safety/`` is its own repository)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)

    def __repr__(self) -> str:
        return f"LocalRepository({self.url!r})"

    def ensure(self) -> LocalRepository:
        private_dir(self.path)
        return self

    def path_of(self, name: str) -> Path:
        if "/" in name or name in ("", ".", ".."):
            raise RepositoryError(f"{name!r} is not a backup name.")
        return self.path / name

    def list(self, prefix: str = "") -> list[Entry]:
        if not self.path.is_dir():
            return []
        found = []
        for entry in os.scandir(self.path):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if not entry.name.startswith(prefix):
                continue
            st = entry.stat(follow_symlinks=False)
            found.append(Entry(entry.name, st.st_size, dt.datetime.fromtimestamp(
                st.st_mtime, dt.timezone.utc)))
        return found

    def open(self, name: str) -> _FileReader:
        try:
            return _FileReader(self.path_of(name))
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{self.path / name} does not exist.") from exc

    def create(self, name: str, *, size_hint: int | None = None) -> _FileSink:
        del size_hint  # a file needs no part size
        self.ensure()
        return _FileSink(self.path, name)

    def delete(self, name: str) -> None:
        self.path_of(name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, name: str = LOCK_FILE) -> Iterator[None]:
        self.ensure()
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RepositoryError(
                    f"Another mmops run holds the lock on {self.path}; try again when it ends."
                ) from exc
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def reserve(self, name: str) -> Iterator[None]:
        """Hold the backup name ``name`` for this run until the block ends: a hidden
        ``.NAME.reserved`` file holding our pid, created only if absent. RepositoryError when
        a file has that name or another live run holds it (two backups in the same second);
        a killed run's reservation (its pid is gone) is taken over."""
        self.ensure()
        final = self.path_of(name)
        marker = self.path / f".{name}.reserved"
        for _attempt in range(2):
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                if _holder_alive(marker):
                    raise NameInUse(
                        f"Another mmops run is writing {final} at this moment.") from None
                marker.unlink(missing_ok=True)
            except OSError as exc:
                raise RepositoryError(
                    f"Cannot create a file in {self.path}: {exc.strerror}.") from exc
        else:
            raise NameInUse(f"Another mmops run is writing {final} at this moment.")
        try:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            if final.exists():
                raise NameInUse(f"{final} already exists; not overwriting it.")
            yield
        finally:
            marker.unlink(missing_ok=True)

    def remove_stale_partials(self, *, now: float | None = None) -> typing.List[Path]:  # noqa: UP006 - `list` is a method here
        """Hidden partial files of killed runs: their pid is gone, or (no pid in the name, as
        the archive writer's) untouched for an hour. Returns what was removed."""
        now = time.time() if now is None else now
        removed: typing.List[Path] = []  # noqa: UP006
        if not self.path.is_dir():
            return removed
        for entry in self.path.iterdir():
            if _RESERVED_RE.match(entry.name) and not _holder_alive(entry):
                entry.unlink(missing_ok=True)
                continue
            m = _PARTIAL_RE.match(entry.name)
            if not m or not entry.is_file():
                continue
            pid = m.group(1)
            try:
                age = now - entry.stat().st_mtime
            except OSError:
                continue
            dead = (pid is not None and not pid_alive(int(pid))) or (
                pid is None and age > STALE_AFTER_S)
            if dead:
                entry.unlink(missing_ok=True)
                removed.append(entry)
        return removed


def _holder_alive(marker: Path) -> bool:
    """Whether the run whose pid ``marker`` holds is still running (an empty marker is one
    being written right now)."""
    try:
        text = marker.read_text().strip()
    except OSError:
        return False
    if not text:
        return True
    return not text.isdigit() or pid_alive(int(text))
