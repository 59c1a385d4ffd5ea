"""The archive over the repository protocol: written into a Sink, read from a ReadAt.

These use an in-memory sink and source; tests/repository/test_archive_in_object_stores.py
does the same against the real S3 and GCS servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.archive import ArchiveReader, ArchiveWriter, read_manifest, verify_archive
from ops.errors import ArchiveError, RepositoryError

CHUNK = 64 << 10  # as in conftest: the sample spans several chunks


class MemorySink:
    def __init__(self, name: str = "db-20240101T000000Z.mmops") -> None:
        self.name = name
        self.data = bytearray()
        self.writes = 0
        self.state = "open"
        self.fail_after: int | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self.state == "open", "write after commit/abort"
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise RepositoryError("The store went away.")
        self.data += data
        self.writes += 1

    def commit(self) -> None:
        assert self.state == "open"
        self.state = "committed"

    def abort(self) -> None:
        self.state = "aborted"


class BytesSource:
    def __init__(self, data: bytes, url: str = "s3://bucket/db-20240101T000000Z.mmops") -> None:
        self._data = bytes(data)
        self.url = url
        self.reads = 0

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, offset: int, size: int) -> bytes:
        self.reads += 1
        return self._data[offset : offset + size]

    def close(self) -> None:
        pass


Sample = dict[str, tuple[str, bytes]]


def write_sample(writer: ArchiveWriter, sample: Sample) -> None:
    for member, (kind, data) in sample.items():
        writer.add_member(member, kind, data)


def test_archive_written_to_a_sink_reads_back_from_a_read_at_source(sample: Sample) -> None:
    sink = MemorySink()
    with ArchiveWriter.to_sink(sink, chunk_size=CHUNK) as writer:
        write_sample(writer, sample)
        assert writer.commit({"database": "db"}) == Path("db-20240101T000000Z.mmops")
    assert sink.state == "committed"
    assert sink.writes < 20  # buffered: not one call per record

    source = BytesSource(bytes(sink.data))
    with ArchiveReader(source) as reader:
        for member, (_kind, data) in sample.items():
            assert reader.read_member(member) == data
    assert read_manifest(source)["database"] == "db"
    report = verify_archive(source)
    assert report.ok and report.path == source.url and report.members == len(sample)


def test_sink_and_file_hold_the_same_layout(tmp_path: Path, sample: Sample) -> None:
    sink = MemorySink()
    with ArchiveWriter.to_sink(sink, chunk_size=CHUNK) as writer:
        write_sample(writer, sample)
        writer.commit({"database": "db"})
    with ArchiveWriter(tmp_path / "x.mmops", chunk_size=CHUNK) as writer:
        write_sample(writer, sample)
        path = writer.commit({"database": "db"})
    on_disk = path.read_bytes()
    assert len(on_disk) == len(sink.data)
    with ArchiveReader(BytesSource(bytes(sink.data))) as a, ArchiveReader(path) as b:
        assert [m.chunks for m in a.members] == [m.chunks for m in b.members]


def test_leaving_the_block_without_commit_aborts_the_sink(sample: Sample) -> None:
    sink = MemorySink()
    with pytest.raises(RuntimeError):
        with ArchiveWriter.to_sink(sink, chunk_size=CHUNK) as writer:
            write_sample(writer, sample)
            raise RuntimeError("backup failed")
    assert sink.state == "aborted"


def test_a_failing_sink_fails_the_writer_with_the_sinks_own_error(sample: Sample) -> None:
    sink = MemorySink()
    sink.fail_after = 0  # the first flush of the buffer fails
    with pytest.raises(RepositoryError, match="went away"):
        with ArchiveWriter.to_sink(sink, chunk_size=CHUNK) as writer:
            write_sample(writer, sample)
            writer.commit({"database": "db"})
    assert sink.state == "aborted"


def test_a_flipped_byte_in_a_read_at_source_is_named_by_its_url(sample: Sample) -> None:
    sink = MemorySink()
    with ArchiveWriter.to_sink(sink, chunk_size=CHUNK) as writer:
        write_sample(writer, sample)
        writer.commit({"database": "db"})
    with ArchiveReader(BytesSource(bytes(sink.data))) as reader:
        offset, _length = reader.member("data/public.notes").chunks[2]
    damaged = bytearray(sink.data)
    damaged[offset + 5] ^= 0xFF
    source = BytesSource(bytes(damaged))
    with pytest.raises(ArchiveError, match="s3://bucket/.* is corrupt: member 'data/public.notes'"):
        verify_archive(source)


def test_a_truncated_read_at_source_is_refused(sample: Sample) -> None:
    sink = MemorySink()
    with ArchiveWriter.to_sink(sink, chunk_size=CHUNK) as writer:
        write_sample(writer, sample)
        writer.commit({"database": "db"})
    with pytest.raises(ArchiveError, match="truncated or incomplete"):
        ArchiveReader(BytesSource(bytes(sink.data[:-100])))


def test_writer_needs_exactly_one_destination(tmp_path: Path, sample: Sample) -> None:
    with pytest.raises(ValueError):
        ArchiveWriter()
    with pytest.raises(ValueError):
        ArchiveWriter(tmp_path / "x.mmops", sink=MemorySink())
