"""Writing and reading back: members, chunks, manifest, parallel writers."""

from __future__ import annotations

import hashlib
import threading

import msgspec
import pytest

import ops
from ops.archive import (
    FILE_SUFFIX,
    FORMAT_VERSION,
    ArchiveReader,
    ArchiveWriter,
    MemberInfo,
    read_manifest,
    verify_archive,
)
from ops.archive.format import compress_chunk
from ops.archive.schema import MemberEntry
from ops.errors import ArchiveError
from tests.archive.conftest import SAMPLE

CHUNK = 64 << 10
_NOTES = SAMPLE["data/public.notes"][1]
NOTES_TABLE = {"schema": "public", "name": "notes", "member": "data/public.notes", "rows": 3,
               "raw_bytes": len(_NOTES), "columns": ["id"],
               "stored_bytes": sum(len(compress_chunk(_NOTES[i:i + CHUNK], 3))
                                   for i in range(0, len(_NOTES), CHUNK))}


def test_round_trip_of_several_members_including_an_empty_one(make_archive, sample):
    path = make_archive(meta={"database": "db", "tables": [NOTES_TABLE]})

    with ArchiveReader(path) as reader:
        assert [m.name for m in reader.members] == list(sample)
        for name, (kind, data) in sample.items():
            info = reader.member(name)
            assert info.kind == kind
            assert info.raw_size == len(data)
            assert info.sha256 == hashlib.sha256(data).hexdigest()
            assert reader.read_member(name) == data
        empty = reader.member("data/public.empty")
        assert empty.chunks == () and empty.stored_size == 0
        assert list(reader.iter_member("data/public.empty")) == []
        assert reader.header["tool_version"] == ops.__version__
        assert reader.header["format_version"] == FORMAT_VERSION


def test_manifest_is_the_engine_metadata_plus_format_keys(make_archive):
    meta = {"database": "db", "server_version": "15.4", "tables": [NOTES_TABLE],
            "globals_format": {"future": ["keys", "are", "kept"]}}
    manifest = read_manifest(make_archive(meta=meta))

    for key, value in meta.items():
        assert manifest[key] == value
    assert manifest["format"] == "markdown-manager-ops"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["compression"] == "zstd"
    assert manifest["tool_version"] == ops.__version__
    assert manifest["created_at"].endswith("Z")
    entry = manifest["members"][2]
    assert set(entry) >= {"name", "kind", "raw_size", "stored_size", "sha256", "chunks"}
    assert entry["chunk_count"] == len(entry["chunks"]) == 6


def test_member_larger_than_chunk_size_is_split_into_bounded_frames(make_archive, sample):
    path = make_archive()
    data = sample["data/public.notes"][1]

    with ArchiveReader(path) as reader:
        info = reader.member("data/public.notes")
        pieces = list(reader.iter_member("data/public.notes"))
    assert len(info.chunks) == -(-len(data) // CHUNK)
    assert all(len(piece) == CHUNK for piece in pieces[:-1])
    assert b"".join(pieces) == data
    assert info.stored_size == sum(length for _, length in info.chunks) < len(data)


def test_chunking_does_not_depend_on_how_the_caller_slices_writes(tmp_path, text_like):
    data = text_like(3 * CHUNK + 7)
    sizes = [1, CHUNK - 1, 2 * CHUNK + 5, 2]  # sums to len(data)
    with ArchiveWriter(tmp_path / "a.mmops", chunk_size=CHUNK) as writer:
        member = writer.open_member("t", "table-data")
        view, pos = memoryview(data), 0
        for size in sizes:
            member.write(bytearray(view[pos : pos + size]) if size == 1 else view[pos : pos + size])
            pos += size
        info = member.close()
        writer.commit({})

    assert len(info.chunks) == 4 and info.raw_size == len(data)
    with ArchiveReader(tmp_path / "a.mmops") as reader:
        assert [len(p) for p in reader.iter_member("t")] == [CHUNK, CHUNK, CHUNK, 7]
        assert reader.read_member("t") == data


def test_two_threads_writing_members_concurrently_interleave_and_stay_intact(tmp_path, text_like):
    datas = {"data/a": text_like(8 * CHUNK, seed=2), "data/b": text_like(8 * CHUNK - 5, seed=3)}
    turn = threading.Barrier(2)  # lock-step: forces the chunks of a and b to interleave
    errors: list[BaseException] = []

    def copy(writer: ArchiveWriter, name: str) -> None:
        try:
            member = writer.open_member(name, "table-data")
            data = memoryview(datas[name])
            for start in range(0, len(data), CHUNK):
                member.write(data[start : start + CHUNK])
                turn.wait(timeout=10)
            member.close()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
            turn.abort()

    path = tmp_path / "par.mmops"
    with ArchiveWriter(path, chunk_size=CHUNK) as writer:
        threads = [threading.Thread(target=copy, args=(writer, name)) for name in datas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        writer.commit({})

    with ArchiveReader(path) as reader:
        a, b = (sorted(off for off, _ in reader.member(n).chunks) for n in datas)
        assert a[0] < b[-1] and b[0] < a[-1], "chunks of the two members should interleave"
        for name, data in datas.items():
            assert reader.read_member(name) == data
    assert verify_archive(path).members == 2


def test_many_threads_many_members(tmp_path, text_like):
    path = tmp_path / "many.mmops"
    datas = {f"data/t{i}": text_like(3 * CHUNK + i * 1000, seed=i) for i in range(8)}
    with ArchiveWriter(path, chunk_size=CHUNK) as writer:
        threads = [
            threading.Thread(target=writer.add_member, args=(name, "table-data", data))
            for name, data in datas.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writer.commit({})

    report = verify_archive(path)
    assert report.ok and report.members == 8
    assert report.raw_bytes == sum(len(d) for d in datas.values())
    with ArchiveReader(path) as reader:
        for name, data in datas.items():
            assert reader.read_member(name) == data


def test_bytes_written_is_the_final_file_size(tmp_path):
    with ArchiveWriter(tmp_path / "a.mmops") as writer:
        writer.add_member("m", "schema", b"x" * 1000)
        before = writer.bytes_written
        path = writer.commit({})
        assert writer.bytes_written == path.stat().st_size > before


def test_verify_reports_sizes_and_progress(make_archive, sample):
    path = make_archive()
    calls: list[tuple[int, int, str]] = []

    report = verify_archive(
        path, progress=lambda done, total, name: calls.append((done, total, name))
    )

    assert report.ok and report.path == path and report.members == len(sample)
    assert report.raw_bytes == sum(len(data) for _, data in sample.values())
    assert calls[-1][0] == calls[-1][1] == report.stored_bytes
    assert {name for _, _, name in calls} == {
        "schema/pre-data",
        "data/public.notes",
        "schema/post-data",
    }


def test_member_info_json_round_trip():
    info = MemberInfo("data/x", "table-data", 10, 7, "0" * 64, ((100, 3), (200, 4)))
    assert MemberInfo.from_entry(msgspec.convert(info.to_json(), MemberEntry)) == info


def test_missing_member_is_an_archive_error(make_archive):
    with ArchiveReader(make_archive()) as reader, pytest.raises(ArchiveError, match="nope"):
        reader.member("nope")


def test_duplicate_member_names_and_reserved_meta_keys_are_refused(tmp_path):
    with ArchiveWriter(tmp_path / "a.mmops") as writer:
        writer.add_member("m", "schema", b"")
        with pytest.raises(ValueError, match="already"):
            writer.open_member("m", "schema")
        with pytest.raises(ValueError, match="members"):
            writer.commit({"members": []})
    assert list(tmp_path.iterdir()) == []


def test_commit_with_a_member_still_open_fails_and_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="still open"):
        with ArchiveWriter(tmp_path / "a.mmops") as writer:
            writer.open_member("m", "table-data").write(b"abc")
            writer.commit({})
    assert list(tmp_path.iterdir()) == []


def test_writer_never_seeks_so_the_file_can_be_streamed(tmp_path, text_like):
    writer = ArchiveWriter(tmp_path / "s.mmops", chunk_size=CHUNK)
    real = writer._file

    class AppendOnly:
        """Forwards what a pipe supports; any seek or tell fails the test."""

        def write(self, data):
            return real.write(data)

        def flush(self):
            real.flush()

        def fileno(self):
            return real.fileno()

        def close(self):
            real.close()

    writer._file = AppendOnly()
    with writer:
        writer.add_member("data/t", "table-data", text_like(3 * CHUNK))
        path = writer.commit({})
    assert verify_archive(path).ok


def test_public_api_is_exported():
    import ops.archive

    assert FILE_SUFFIX == ".mmops"
    assert set(ops.archive.__all__) >= {
        "ArchiveWriter",
        "ArchiveReader",
        "MemberInfo",
        "VerifyReport",
        "read_manifest",
        "verify_archive",
        "FORMAT_VERSION",
        "FILE_SUFFIX",
    }
    for name in ops.archive.__all__:
        assert hasattr(ops.archive, name)
