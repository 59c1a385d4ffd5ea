"""Result values and progress events of the engine (plain data, rendered by the CLI)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One progress event. ``phase``: 'schema', 'data', 'post-data', 'verify', 'transfer' ...

    ``done``/``total`` count bytes for data phases (``total`` may be None when unknown).
    """

    phase: str
    done: int = 0
    total: int | None = None
    item: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressCallback = Callable[[Progress], None]


class RestoreMode(str, enum.Enum):
    CREATE = "create"  # target has no user tables: create everything
    REPLACE = "replace"  # drop the backup's schemas' objects, recreate
    DATA_ONLY = "data-only"  # keep target schema, truncate + load


@dataclass(frozen=True)
class TableSummary:
    schema: str
    name: str
    rows: int
    bytes_raw: int
    bytes_stored: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class BackupResult:
    path: str
    database: str
    server_version: str
    alembic_revision: str | None
    tables: list[TableSummary]
    size_bytes: int
    duration_s: float
    created_at: str
    file_sha256: str = ""  # of every byte the writer wrote (ArchiveWriter.sha256)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.total_rows
        return d


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do, shown to the operator before anything changes."""

    mode: RestoreMode
    database: str
    backup_created_at: str
    backup_alembic_revision: str | None
    live_alembic_revision: str | None
    tables_to_load: list[str]
    rows_to_load: int
    objects_to_drop: list[str] = field(default_factory=list)
    live_rows_replaced: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mode"] = self.mode.value
        return d


@dataclass(frozen=True)
class RestoreResult:
    database: str
    mode: RestoreMode
    tables: list[TableSummary]
    duration_s: float
    plan: RestorePlan

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mode"] = self.mode.value
        d["plan"] = self.plan.to_dict()
        d["total_rows"] = self.total_rows
        return d
