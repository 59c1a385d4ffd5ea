"""The one place ``mmops web`` writes: a private 0700 directory under ``$TMPDIR``.

Read-only platforms allow only ``/tmp``; every upload and every backup in flight goes through
here as a 0600 file in a 0700 directory with an unpredictable name, and is removed after use
(the whole directory when the server stops).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, default: str = "upload") -> str:
    """A browser-supplied file name reduced to one harmless path component."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[:120]
    return cleaned or default


class Workspace:
    def __init__(self, root: Path | None = None) -> None:
        parent = str(root) if root is not None else None
        self.path = Path(tempfile.mkdtemp(prefix="mmops-web-", dir=parent))  # 0700
        os.chmod(self.path, 0o700)

    def subdir(self, name: str) -> Path:
        path = self.path / name
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def new_dir(self) -> Path:
        """A fresh private 0700 directory for one restore's files (an upload, a download from
        the repository, a decrypted copy), removed with ``remove_dir``."""
        holder = self.subdir("uploads") / secrets.token_hex(12)
        holder.mkdir(mode=0o700)
        return holder

    def new_file(self, display_name: str) -> Path:
        """A new empty 0600 file named ``display_name`` in its own fresh 0700 directory (so
        messages about it name the user's file, and two uploads never collide)."""
        path = self.new_dir() / safe_file_name(display_name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        return path

    @staticmethod
    def discard(path: Path) -> None:
        """Remove a file made by ``new_file`` and its directory."""
        shutil.rmtree(path.parent, ignore_errors=True)

    @staticmethod
    def remove_dir(path: Path) -> None:
        """Remove a directory made by ``new_dir`` with everything in it."""
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
