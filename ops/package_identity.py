"""Version and content hash of the installed ``ops`` package (same function on laptop and server).

The hash covers every file a wheel of the package ships (sources, the lock, migrations), so the
laptop can tell whether the server's agent runs exactly the local code ("drift").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class PackageIdentity:
    version: str
    content_hash: str

    @property
    def short(self) -> str:
        return f"{self.version} ({self.content_hash[:12]})"


def package_dir() -> Path:
    """The ``ops`` package directory (this module lives at its top)."""
    return Path(__file__).resolve().parent


def _files(root: Path) -> list[Path]:
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.suffix in _SKIP_SUFFIXES or not path.is_file():
            continue
        out.append(path)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def content_hash(root: Path | None = None) -> str:
    """sha256 over (relative path, bytes) of every shipped file under the package directory."""
    root = root or package_dir()
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def local_identity() -> PackageIdentity:
    from ._version import __version__

    return PackageIdentity(__version__, content_hash())


def wheel_content_hash(wheel: Path, package: str = "ops") -> str:
    """The same hash computed over the package's files inside a built wheel."""
    import zipfile

    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        names = []
        for name in zf.namelist():
            if not name.startswith(package + "/") or name.endswith("/"):
                continue
            rel = name[len(package) + 1 :]
            parts = rel.split("/")
            if any(p in _SKIP_DIRS or p.startswith(".") for p in parts):
                continue
            if Path(rel).suffix in _SKIP_SUFFIXES:
                continue
            names.append((rel, name))
        for rel, name in sorted(names):
            digest.update(rel.encode() + b"\0")
            digest.update(hashlib.sha256(zf.read(name)).digest())
    return digest.hexdigest()
