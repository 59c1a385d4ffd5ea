"""The sidecar rules of ``repository.verified`` one by one, on a real directory: each way a
sidecar can lie or break makes the backup not count, with the reason, and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.repository.local import LocalRepository
from ops.repository.verified import MAX_SIDECAR_BYTES, list_backups

NAME = "app-20261201T020000Z.mmops.age"
GOOD = {"database": "app", "created_at": "2026-12-01T02:00:03+00:00", "size": 5,
        "encrypted": True, "kind": "full", "alembic_revision": "abc123"}


def _repo(tmp_path: Path, sidecar: bytes | None) -> LocalRepository:
    (tmp_path / NAME).write_bytes(b"12345")
    if sidecar is not None:
        (tmp_path / f"{NAME}.meta.json").write_bytes(sidecar)
    return LocalRepository(tmp_path)


def test_a_consistent_sidecar_makes_it_a_backup_with_its_facts(tmp_path: Path) -> None:
    listing = list_backups(_repo(tmp_path, json.dumps(GOOD).encode()))
    assert [(b.name, b.kind, b.alembic_revision) for b in listing.backups] == [
        (NAME, "full", "abc123")]
    assert listing.unverified == []


@pytest.mark.parametrize(("sidecar", "reason"), [
    (None, "sidecar app-20261201T020000Z.mmops.age.meta.json is missing"),
    (b"{not json", "malformed"),
    (json.dumps({**GOOD, "size": "5"}).encode(), "malformed"),
    (json.dumps({**GOOD, "tables": "x"}).encode(), "malformed"),
    (json.dumps([GOOD]).encode(), "malformed"),
    (b'{"database": "app", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}", "larger than"),
    (b'{"database": "app", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}", "nested too deeply"),
    (b" " * (MAX_SIDECAR_BYTES + 1), "larger than"),
    (json.dumps({**GOOD, "size": 6}).encode(), "has 5 bytes but its sidecar says 6"),
    (json.dumps({**GOOD, "database": "other"}).encode(), "holds database 'other'"),
    (json.dumps({**GOOD, "encrypted": False}).encode(), "about encryption"),
    (json.dumps({**GOOD, "created_at": "2099-01-01T00:00:00Z"}).encode(), "not at the time"),
    (json.dumps({**GOOD, "created_at": "2026-11-30T02:00:00Z"}).encode(), "not at the time"),
    (json.dumps({**GOOD, "created_at": "yesterday"}).encode(), "no valid creation time"),
])
def test_a_sidecar_that_breaks_or_lies_makes_it_not_count(
    tmp_path: Path, sidecar: bytes | None, reason: str
) -> None:
    listing = list_backups(_repo(tmp_path, sidecar))
    assert listing.backups == []
    assert len(listing.unverified) == 1 and reason in listing.unverified[0].reason


def test_a_plain_local_file_without_a_sidecar_needs_a_readable_manifest(tmp_path: Path) -> None:
    (tmp_path / "app-20261201T020000Z.mmops").write_bytes(b"junk")
    listing = list_backups(LocalRepository(tmp_path))
    assert listing.backups == [] and "manifest cannot be read" in listing.unverified[0].reason


def test_verdicts_are_remembered_per_object_and_sidecar(tmp_path: Path) -> None:
    repo = _repo(tmp_path, None)
    known: dict = {}
    assert list_backups(repo, known=known).backups == []
    (tmp_path / f"{NAME}.meta.json").write_bytes(json.dumps(GOOD).encode())  # arrives later
    assert [b.name for b in list_backups(repo, known=known).backups] == [NAME]
    assert len(known) == 2
