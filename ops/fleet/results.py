"""What a fleet run returns: one row per host, in inventory order (values, rendered by the CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK, FAILED, INTERRUPTED, NOT_STARTED = "ok", "failed", "interrupted", "not started"


@dataclass(frozen=True)
class HostResult:
    name: str
    host: str
    result: str  # ok | failed | interrupted | not started
    exit_code: int | None = None
    size_bytes: int | None = None
    duration_s: float | None = None
    detail: str = ""  # the backup's file/object, or the command's one error sentence
    started_at: float | None = None  # time.time() when the host's command started
    finished_at: float | None = None
    log: str | None = None
    output: dict[str, Any] | None = field(default=None, repr=False)  # the command's --json

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FleetResult:
    command: str
    inventory: str
    parallel: int
    log_dir: Path
    hosts: tuple[HostResult, ...]
    interrupted: bool = False

    def count(self, result: str) -> int:
        return sum(h.result == result for h in self.hosts)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(h.result == OK for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "inventory": self.inventory, "parallel": self.parallel,
                "log_dir": str(self.log_dir), "interrupted": self.interrupted,
                "ok": self.ok, "hosts": [h.to_dict() for h in self.hosts]}
