"""What the live database holds, as plain data (read by ``steps.status``, also over the agent)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LiveTable:
    """A table that holds rows: plain tables and the leaf partitions of partitioned ones
    (the same units a backup's manifest lists), never a partitioned parent."""

    schema: str
    name: str
    rows: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class LiveForeignKey:
    """Table ``(schema, name)`` has a foreign key to ``(ref_schema, ref_name)`` (leaf
    partitions, like ``LiveTable``)."""

    schema: str
    name: str
    ref_schema: str
    ref_name: str


@dataclass(frozen=True)
class LiveStatus:
    database: str
    server: str  # user@host:port/db, never a password
    server_version: str
    alembic_revision: str | None
    tables: list[LiveTable] = field(default_factory=list)
    foreign_keys: list[LiveForeignKey] = field(default_factory=list)

    @property
    def user_tables(self) -> int:
        return len(self.tables)

    def rows_by_table(self) -> dict[str, int]:
        return {t.qualified: t.rows for t in self.tables}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LiveStatus:
        return cls(
            database=str(d["database"]),
            server=str(d.get("server", "")),
            server_version=str(d.get("server_version", "")),
            alembic_revision=d.get("alembic_revision"),
            tables=[LiveTable(str(t["schema"]), str(t["name"]), int(t["rows"]))
                    for t in d.get("tables", [])],
            # an older agent sends none: the engine's own check still refuses on the server
            foreign_keys=[LiveForeignKey(str(k["schema"]), str(k["name"]), str(k["ref_schema"]),
                                         str(k["ref_name"])) for k in d.get("foreign_keys", [])],
        )
