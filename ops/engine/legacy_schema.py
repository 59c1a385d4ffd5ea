"""Backups written before the schema came from pg_dump: ``schema.json`` holds the DDL as
statement lists (pre-data, post-data, matview refreshes) and the sequences' values. Read-only:
restoring such a backup runs its statements as they were written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ArchiveError
from .catalog import SequenceValue, sequences_from_json
from .restore_policy import relations_created


@dataclass(frozen=True)
class LegacySchema:
    schemas: tuple[str, ...]
    pre_data: tuple[str, ...]
    post_data: tuple[str, ...]
    refresh: tuple[str, ...]
    sequences: tuple[SequenceValue, ...]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LegacySchema:
        try:
            return cls(
                schemas=tuple(str(x) for x in d["schemas"]),
                pre_data=_strings(d["pre_data"]),
                post_data=_strings(d["post_data"]),
                refresh=_strings(d["refresh"]),
                sequences=sequences_from_json(d),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError("The backup's schema member is damaged (schema.json).") from exc

    def relations(self, tables_with_rows: int) -> int:
        return relations_created(self.pre_data, self.post_data, tables_with_rows)


def _strings(items: Sequence[Any]) -> tuple[str, ...]:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise TypeError("not a list of statements")
    return tuple(items)
