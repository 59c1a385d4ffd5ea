"""Open a backup for reading (``inspect``, ``verify``) wherever it is and however it is stored:
a local file, a repository object read by offset (``s3://…/NAME.mmops``), or an age-encrypted
``NAME.mmops.age`` — decrypted with the operator's identity into a private 0700 directory that
is removed afterwards; without an identity, only its clear-text sidecar can be read."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..repository.base import Repository


def _locate(spec: str) -> tuple[Repository, str] | None:
    """The repository and name of an object URL; None for a local path."""
    if spec.lower().startswith(("s3://", "gs://")):
        from ..repository import open_repository

        parent, _, name = spec.rpartition("/")
        return open_repository(parent), name
    return None


def _local(spec: str) -> Path:
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"{spec} is not a file.")
    return path


def sidecar(spec: str) -> dict[str, Any] | None:
    """What the clear-text ``NAME.meta.json`` stored beside a backup says (database, time,
    size, kind, alembic revision, counts), or None when there is none."""
    import msgspec

    from ..errors import RepositoryError
    from ..repository.local import LocalRepository
    from ..repository.verified import read_sidecar

    located = _locate(spec)
    if located is None:
        path = _local(spec)
        located = LocalRepository(path.parent), path.name
    try:
        found: dict[str, Any] = msgspec.to_builtins(read_sidecar(*located))
    except (RepositoryError, ValueError):  # none, or not what a sidecar is: nothing known
        return None
    return found


@contextlib.contextmanager
def readable_backup(spec: str, identity: str | None) -> Iterator[Any]:
    """A plain backup to read: a local path, a stored object (read by offset, never
    downloaded whole), or the decrypted copy of an ``.age`` backup (needs ``identity``)."""
    located = _locate(spec)
    source: Any = located[0].open(located[1]) if located else _local(spec)
    if not spec.endswith(".age"):
        try:
            yield source
        finally:
            if located:
                source.close()
        return
    if not identity:
        if located:
            source.close()
        raise UsageError(f"{spec} is age-encrypted: pass the identity that opens it with "
                         "--identity FILE (AGE_IDENTITY).")
    from ..crypto.age import decrypt_to_file, load_identities

    name = located[1] if located else Path(spec).name
    try:
        with tempfile.TemporaryDirectory(prefix="mmops-read-") as work:  # 0700, unpredictable
            yield decrypt_to_file(source, Path(work) / name.removesuffix(".age"),
                                  load_identities(identity), what=spec)
    finally:
        if located:
            source.close()
