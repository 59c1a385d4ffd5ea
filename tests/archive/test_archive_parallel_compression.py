"""Chunks of one member compress on a thread pool and still land in order, intact."""

from __future__ import annotations

import threading

from ops.archive import ArchiveReader, ArchiveWriter, verify_archive
from ops.archive import format as archive_format
from tests.archive.conftest import CHUNK


def test_chunks_of_one_member_compress_on_several_threads_and_land_in_order(
    tmp_path, text_like, monkeypatch
):
    threads: set[str] = set()
    real = archive_format.compress_chunk

    def spy(raw, level):
        threads.add(threading.current_thread().name)
        return real(raw, level)

    monkeypatch.setattr("ops.archive.writer.compress_chunk", spy)
    data = text_like(12 * CHUNK + 11, seed=4)
    path = tmp_path / "p.mmops"
    with ArchiveWriter(path, chunk_size=CHUNK, compress_threads=3) as writer:
        member = writer.open_member("t", "table-data")
        member.write(data)  # immutable bytes: whole chunks are compressed without a copy
        info = member.close()
        writer.commit({})

    assert len(info.chunks) == 13
    assert [offset for offset, _ in info.chunks] == sorted(offset for offset, _ in info.chunks)
    assert any(name.startswith("mmops-compress") for name in threads)
    with ArchiveReader(path) as reader:
        assert reader.read_member("t") == data
    assert verify_archive(path).raw_bytes == len(data)


def test_a_mutable_buffer_may_change_after_write_returns(tmp_path, text_like):
    data = text_like(4 * CHUNK, seed=5)
    path = tmp_path / "m.mmops"
    with ArchiveWriter(path, chunk_size=CHUNK, compress_threads=2) as writer:
        member = writer.open_member("t", "table-data")
        buf = bytearray(data)
        member.write(buf)
        buf[:] = b"x" * len(buf)  # the caller reuses its buffer at once
        member.close()
        writer.commit({})
    with ArchiveReader(path) as reader:
        assert reader.read_member("t") == data


def test_an_abort_with_compressions_in_flight_leaves_no_file(tmp_path, text_like):
    path = tmp_path / "a.mmops"
    writer = ArchiveWriter(path, chunk_size=CHUNK, compress_threads=2)
    member = writer.open_member("t", "table-data")
    member.write(text_like(6 * CHUNK, seed=6))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
