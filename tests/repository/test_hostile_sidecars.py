"""A backup's clear-text sidecar (``NAME.meta.json``) is untrusted like its manifest: a deeply
nested, wrongly typed or oversized one makes its backup "damaged" with the reason (never counted,
chosen or pruned), never a traceback or a value shown as the backup's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.cli import main
from ops.repository.documents import MAX_DOCUMENT, parse_lock_holder, parse_sidecar
from tests.archive.hostile import engine_like_archive

NAME = "db-20261201T000000Z.mmops"

HOSTILE_SIDECARS = {
    "nested 100,000 deep": b'{"kind": "full", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "kind is an object": json.dumps({"kind": {"a": 1}, "alembic_revision": "r1"}).encode(),
    "alembic revision is 10,000 characters": json.dumps(
        {"kind": "full", "alembic_revision": "r" * 10_000}).encode(),
    "size is negative": json.dumps({"kind": "full", "size": -1}).encode(),
    "an array": b"[1, 2]",
    "not UTF-8": b'{"kind": "\xff"}',
    "larger than a sidecar can be": json.dumps(
        {"kind": "full", "pad": "x" * MAX_DOCUMENT}).encode(),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SIDECARS))
def test_repo_list_shows_a_backup_with_a_hostile_sidecar_as_damaged(
        case: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    engine_like_archive(repo / NAME)
    (repo / (NAME + ".meta.json")).write_bytes(HOSTILE_SIDECARS[case])

    res = CliRunner().invoke(main, ["repo", "--repo", str(repo), "list", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    rows = json.loads(res.stdout)["backups"]
    # A name is a claim, not a proof: a backup whose sidecar is not a sidecar is listed as
    # damaged with the reason (never counted, chosen or pruned), not read from a lying sidecar.
    assert [(r["name"], r["kind"], r["verified"]) for r in rows] == [(NAME, "damaged", False)]
    assert "sidecar" in rows[0]["problem"]


def test_a_sane_sidecar_is_read_as_written() -> None:
    meta = {"database": "db", "created_at": "2026-12-01T00:00:00+00:00", "kind": "tables",
            "alembic_revision": None, "tables": 3, "rows": 10, "size": 1234,
            "encrypted": True, "server_version": "15.4", "added_later": {"a": [1]}}
    assert parse_sidecar(json.dumps(meta).encode()) == meta


def test_a_hostile_lock_object_names_no_holder() -> None:
    assert parse_lock_holder(b'{"host": "h", "pid": 7, "created_at": "x"}').pid == 7
    assert parse_lock_holder(b"[" * 4096) is None
    assert parse_lock_holder(b'{"pid": "seven"}') is None
