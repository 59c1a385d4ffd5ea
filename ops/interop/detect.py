"""The one detector: which kind of backup file a path is, read from its contents."""

from __future__ import annotations

import enum
from pathlib import Path

from ..archive.format import MAGIC
from ..errors import ArchiveError

AGE_MAGIC = b"age-encryption.org/v1"


class FileKind(str, enum.Enum):
    ARCHIVE = "mmops"  # our own format
    LEGACY_JSON = "legacy-json"  # the old scripts' production_backup_*.json
    SQL_SCRIPT = "sql-script"  # a plain-format pg_dump (or similar) SQL file

    @property
    def label(self) -> str:
        return {
            FileKind.ARCHIVE: "a .mmops backup",
            FileKind.LEGACY_JSON: "an old JSON backup",
            FileKind.SQL_SCRIPT: "a plain SQL dump",
        }[self]

    @property
    def foreign(self) -> bool:
        """A file we did not write: no manifest, its own restore semantics."""
        return self is not FileKind.ARCHIVE


def detect_kind(path: Path) -> FileKind:
    """Which kind of backup ``path`` is; ArchiveError (nothing changed) when it is none."""
    from .legacy_json_reader import looks_like_legacy_json
    from .sql_script import looks_like_sql_script

    try:
        with path.open("rb") as fh:
            head = fh.read(max(len(MAGIC), len(AGE_MAGIC)))
    except FileNotFoundError as exc:
        raise ArchiveError(f"Backup file {path} does not exist.") from exc
    except OSError as exc:
        raise ArchiveError(f"Cannot read backup file {path}: {exc.strerror}.") from exc
    if head.startswith(MAGIC) or path.suffix == ".mmops":
        return FileKind.ARCHIVE  # a damaged .mmops file gets verify_archive's own message
    if head.startswith(AGE_MAGIC):
        raise ArchiveError(
            f"{path.name} is age-encrypted; decrypt it first (age -d -i KEY {path.name})."
        )
    if looks_like_legacy_json(path):
        return FileKind.LEGACY_JSON
    if looks_like_sql_script(path):
        return FileKind.SQL_SCRIPT
    raise ArchiveError(
        f"{path.name} is neither a .mmops backup, an old JSON backup nor a plain SQL dump; "
        "nothing was changed."
    )
