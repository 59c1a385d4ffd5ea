"""What the workflows return: plain values that every front end renders and the agent sends
back over its channel (``to_dict``/``from_dict``), so both sides share one set of types."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..engine.results import TableSummary
from .publish import PublishOutcome, PublishRequest


@dataclass(frozen=True)
class BackupRequest:
    jobs: int = 2
    tables: list[str] = field(default_factory=list)
    exclude_tables: list[str] = field(default_factory=list)
    level: int = 3
    name: str | None = None  # the file's name; default <db>-<UTC timestamp>.mmops
    publish: PublishRequest | None = None  # a repository other than the local backup dir
    yield_after: float = 5.0  # give way to sessions queued behind our locks (0: never)
    lock_timeout: float = 30.0  # how long the backup waits for a lock someone else holds

    def to_dict(self, *, secrets: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["publish"] = None if self.publish is None else self.publish.to_dict(secrets=secrets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackupRequest:
        pub = d.get("publish")
        return cls(jobs=int(d.get("jobs", 2)), tables=list(d.get("tables") or []),
                   exclude_tables=list(d.get("exclude_tables") or []),
                   level=int(d.get("level", 3)), name=d.get("name"),
                   publish=PublishRequest.from_dict(pub) if pub else None,
                   yield_after=float(d.get("yield_after", 5.0)),
                   lock_timeout=float(d.get("lock_timeout", 30.0)))


@dataclass(frozen=True)
class BackupOutcome:
    host: str
    path: str  # where the verified file is now (on the laptop for every mode)
    size_bytes: int
    sha256: str
    database: str
    server_version: str
    alembic_revision: str | None
    created_at: str
    tables: list[TableSummary]
    duration_s: float
    verified_members: int
    cleaned: list[str] = field(default_factory=list)  # leftovers of killed runs removed first
    published: PublishOutcome | None = None  # where the repository holds it, if not BACKUP_DIR

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.total_rows
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackupOutcome:
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        fields["tables"] = [TableSummary(**t) for t in d["tables"]]
        if d.get("published"):
            fields["published"] = PublishOutcome.from_dict(d["published"])
        return cls(**fields)


@dataclass(frozen=True)
class RestoreRequest:
    """What the operator asked for, after the plan resolved the mode (never ``auto`` here)."""

    mode: str  # create | replace | data-only | sql-script
    kind: str  # FileKind value
    tables: list[str] = field(default_factory=list)
    force: bool = False
    lock_timeout: float = 30.0
    jobs: int = 2
    keep_safety: int = 5
    no_owner: bool = False
    no_privileges: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RestoreRequest:
        return cls(mode=str(d["mode"]), kind=str(d["kind"]), tables=list(d.get("tables") or []),
                   force=bool(d.get("force")), lock_timeout=float(d.get("lock_timeout", 30.0)),
                   jobs=int(d.get("jobs", 2)), keep_safety=int(d.get("keep_safety", 5)),
                   no_owner=bool(d.get("no_owner")), no_privileges=bool(d.get("no_privileges")))


@dataclass(frozen=True)
class RestoreOutcome:
    host: str
    database: str
    kind: str
    mode: str
    tables: int
    rows_restored: int
    row_check: str  # "ok", "ok for the N tables restored", or "skipped: why"
    rows_checked: int | None  # None: no manifest to check against (foreign files)
    alembic_revision: str | None
    sequences_set: int
    safety_backup: str | None  # None: the database held no user tables, nothing to save
    duration_s: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_rows"] = self.rows_restored
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RestoreOutcome:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
