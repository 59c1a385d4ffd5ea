"""A partial file never lands under its final name; files are private."""

from __future__ import annotations

import os
import re
import stat

import pytest

from ops.archive import ArchiveWriter, verify_archive
from ops.errors import ArchiveError, ConfigError

PARTIAL = re.compile(rf"\.db\.mmops\.partial-{os.getpid()}-[0-9a-f]{{16}}")


def test_file_is_created_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        with ArchiveWriter(tmp_path / "db.mmops") as writer:
            (partial,) = tmp_path.iterdir()
            assert stat.S_IMODE(partial.stat().st_mode) == 0o600
            writer.add_member("m", "schema", b"x")
            path = writer.commit({})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_final_name_is_absent_until_commit(tmp_path):
    final = tmp_path / "db.mmops"
    with ArchiveWriter(final) as writer:
        writer.add_member("m", "schema", b"x" * 100_000)
        (partial,) = tmp_path.iterdir()
        assert PARTIAL.fullmatch(partial.name)
        assert not final.exists()
        assert writer.commit({"database": "db"}) == final
    assert [p.name for p in tmp_path.iterdir()] == ["db.mmops"]
    assert verify_archive(final).ok


def test_partial_names_are_unpredictable(tmp_path):
    a = ArchiveWriter(tmp_path / "db.mmops")
    b = ArchiveWriter(tmp_path / "db.mmops")
    try:
        assert a.partial_path != b.partial_path
    finally:
        a.abort()
        b.abort()
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_with_removes_the_partial_file(tmp_path):
    with pytest.raises(KeyError):
        with ArchiveWriter(tmp_path / "db.mmops") as writer:
            member = writer.open_member("data/t", "table-data")
            member.write(b"row\n" * 100_000)
            raise KeyError("engine failed mid-COPY")
    assert list(tmp_path.iterdir()) == []


def test_leaving_with_without_commit_removes_the_partial_file(tmp_path):
    with ArchiveWriter(tmp_path / "db.mmops") as writer:
        writer.add_member("m", "schema", b"x")
    assert list(tmp_path.iterdir()) == []


def test_writes_after_abort_fail_clearly(tmp_path):
    writer = ArchiveWriter(tmp_path / "db.mmops", chunk_size=16)
    member = writer.open_member("data/t", "table-data")
    writer.abort()
    writer.abort()  # idempotent
    with pytest.raises(ArchiveError, match="aborted"):
        member.write(b"x" * 64)
    with pytest.raises(ArchiveError, match="aborted"):
        writer.commit({})
    assert list(tmp_path.iterdir()) == []


def test_existing_backup_is_never_overwritten(tmp_path):
    final = tmp_path / "db.mmops"
    final.write_bytes(b"precious")
    with pytest.raises(ArchiveError, match="already exists"):
        ArchiveWriter(final)

    final.unlink()
    with pytest.raises(ArchiveError, match="already exists"):
        with ArchiveWriter(final) as writer:
            final.write_bytes(b"appeared meanwhile")
            writer.commit({})
    assert final.read_bytes() == b"appeared meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["db.mmops"]


def test_missing_destination_directory_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="Cannot create"):
        ArchiveWriter(tmp_path / "nope" / "db.mmops")


def _failing_writer(tmp_path, errno_, text):
    writer = ArchiveWriter(tmp_path / "db.mmops", chunk_size=16)
    real = writer._file

    class Failing:
        """The real file, but every write fails with ``errno_``."""

        def write(self, data):
            raise OSError(errno_, text)

        def close(self):
            real.close()

    writer._file = Failing()  # type: ignore[assignment]
    return writer


def test_write_failure_becomes_an_archive_error_and_cleans_up(tmp_path):
    writer = _failing_writer(tmp_path, 5, "Input/output error")
    with pytest.raises(ArchiveError, match="Input/output error"):
        with writer:
            writer.add_member("m", "schema", b"x" * 64)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_a_config_error_naming_the_directory_and_cleans_up(tmp_path):
    writer = _failing_writer(tmp_path, 28, "No space left on device")
    with pytest.raises(ConfigError, match=f"the disk holding {re.escape(str(tmp_path))} is full"):
        with writer:
            writer.add_member("m", "schema", b"x" * 64)
    assert list(tmp_path.iterdir()) == []
