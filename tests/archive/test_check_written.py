"""check_written: the check right after a backup is written (structure + the bytes read back
hash to what the writer produced), and backup_into using it on a real database."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from ops.archive import ArchiveReader, ArchiveWriter, check_written, verify_archive
from ops.errors import ArchiveError
from tests.archive.conftest import CHUNK, SAMPLE
from tests.archive.test_archive_damage import (
    NOTES,
    chunks_of,
    edit_manifest_entry,
    flip,
    swap_first_chunks,
)


def write_sample(path: Path) -> tuple[Path, str]:
    with ArchiveWriter(path, chunk_size=CHUNK) as writer:
        for member, (kind, data) in SAMPLE.items():
            writer.add_member(member, kind, data)
        final = writer.commit({"database": "db"})
        return final, writer.sha256


def test_the_writers_digest_is_the_files_and_the_check_passes(tmp_path: Path) -> None:
    path, digest = write_sample(tmp_path / "db-20240101T000000Z.mmops")
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    seen: list[int] = []
    report = check_written(path, digest, progress=lambda done, _total, _name: seen.append(done))
    assert report == verify_archive(path)
    assert report.members == len(SAMPLE) and report.ok
    assert seen and seen[-1] == report.stored_bytes


def test_a_byte_changed_after_writing_is_caught_without_decompressing(tmp_path: Path) -> None:
    path, digest = write_sample(tmp_path / "db-20240101T000000Z.mmops")
    offset, length = chunks_of(path)[2]
    flip(path, offset + length // 2)
    with pytest.raises(ArchiveError, match="does not hold the bytes that were written") as exc:
        check_written(path, digest)
    assert str(path) in str(exc.value)
    assert exc.value.exit_code == 6


def test_a_file_cut_short_after_writing_is_caught(tmp_path: Path) -> None:
    path, digest = write_sample(tmp_path / "db-20240101T000000Z.mmops")
    with ArchiveReader(path) as reader:
        size = reader.size
    # Appending is a change too: the trailer is no longer at the end.
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArchiveError):
        check_written(path, digest)
    with open(path, "r+b") as f:
        f.truncate(size - 1)
    with pytest.raises(ArchiveError):
        check_written(path, digest)


def test_a_bad_structure_fails_even_when_the_digest_matches(tmp_path: Path) -> None:
    """A writer bug writes a consistent-looking file whose manifest disagrees with its records:
    the digest of what it wrote matches, the structural pass must still refuse it."""
    path, _ = write_sample(tmp_path / "db-20240101T000000Z.mmops")
    edit_manifest_entry(path, NOTES, swap_first_chunks)
    as_written = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ArchiveError, match="data/public.notes"):
        check_written(path, as_written)


def test_an_end_record_disagreeing_with_the_manifest_fails_without_decompressing(
    tmp_path: Path,
) -> None:
    path, _ = write_sample(tmp_path / "db-20240101T000000Z.mmops")
    edit_manifest_entry(path, NOTES, lambda entry: entry.update(sha256="0" * 64))
    as_written = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ArchiveError, match="does not match its sha256 checksum"):
        check_written(path, as_written)


def test_backup_into_removes_a_file_changed_between_writing_and_its_check(
    make_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real backup path: a byte changed on disk after the commit is caught by the check and
    no file stays under a backup's name."""
    import asyncpg

    from ops.repository.local import LocalRepository
    from ops.steps import engine_side
    from ops.steps.results import BackupRequest

    url = make_db()

    async def fill() -> None:
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
            await conn.execute("INSERT INTO notes SELECT g, repeat(md5(g::text), 40) "
                               "FROM generate_series(1, 20000) g")
        finally:
            await conn.close()

    asyncio.run(fill())
    real = engine_side.check_written

    def damage_then_check(path: Path, digest: str):  # type: ignore[no-untyped-def]
        with ArchiveReader(path) as reader:
            member = next(m for m in reader.members if m.chunks and m.kind == "table-data")
        offset, length = member.chunks[0]
        flip(path, offset + length // 2)
        return real(path, digest)

    monkeypatch.setattr(engine_side, "check_written", damage_then_check)
    repo = LocalRepository(tmp_path / "backups")
    with pytest.raises(ArchiveError, match="does not hold the bytes that were written"):
        asyncio.run(engine_side.backup_into(url, repo, BackupRequest(), host="local"))
    assert [p.name for p in (tmp_path / "backups").iterdir()] == []

    monkeypatch.setattr(engine_side, "check_written", real)
    outcome = asyncio.run(engine_side.backup_into(url, repo, BackupRequest(), host="local",
                                                  checksum=True))
    assert outcome.sha256 == hashlib.sha256(Path(outcome.path).read_bytes()).hexdigest()
    assert verify_archive(Path(outcome.path)).ok
