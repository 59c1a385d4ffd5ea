"""Damaged, truncated and foreign files fail with one clear ArchiveError."""

from __future__ import annotations

import json
import os
import struct

import pytest

from ops.archive import ArchiveReader, read_manifest, verify_archive
from ops.errors import ArchiveError, FormatVersionError

NOTES = "data/public.notes"


def chunks_of(path, name=NOTES):
    with ArchiveReader(path) as reader:
        return reader.member(name).chunks


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x40]))


def test_inspect_reads_the_manifest_without_touching_data(make_archive):
    path = make_archive(meta={"database": "db"})
    before = read_manifest(path)
    with ArchiveReader(path) as reader:
        all_chunks = [c for m in reader.members for c in m.chunks]
    for offset, length in all_chunks:
        patch(path, offset, os.urandom(length))  # garbage of the same length

    assert read_manifest(path) == before
    with pytest.raises(ArchiveError, match="schema/pre-data"):
        verify_archive(path)


def test_flipped_byte_inside_a_data_chunk_names_the_member(make_archive):
    path = make_archive()
    offset, length = chunks_of(path)[2]
    flip(path, offset + length // 2)

    with pytest.raises(ArchiveError, match="data/public.notes") as exc:
        verify_archive(path)
    assert str(path) in str(exc.value)
    assert exc.value.exit_code == 6
    with ArchiveReader(path) as reader:
        assert reader.read_member("schema/pre-data")  # other members still readable
        with pytest.raises(ArchiveError, match="data/public.notes"):
            reader.read_member(NOTES)


@pytest.mark.parametrize("where", ["frame header", "frame checksum", "record length"])
def test_other_damage_inside_a_chunk_names_the_member(make_archive, where):
    path = make_archive()
    offset, length = chunks_of(path)[1]
    target = {
        "frame header": offset + 5,
        "frame checksum": offset + length - 1,
        "record length": offset - 2,
    }[where]
    flip(path, target)

    with pytest.raises(ArchiveError, match="data/public.notes"):
        verify_archive(path)


def test_chunk_list_that_disagrees_with_the_stream_is_caught(make_archive):
    """A valid manifest (crc and all) that points at the wrong chunk order fails verify."""
    path = make_archive()
    edit_manifest_entry(path, NOTES, swap_first_chunks)

    with ArchiveReader(path) as reader, pytest.raises(ArchiveError, match="data/public.notes"):
        reader.read_member(NOTES)
    with pytest.raises(ArchiveError, match="data/public.notes"):
        verify_archive(path)


def swap_first_chunks(entry):
    entry["chunks"][0], entry["chunks"][1] = entry["chunks"][1], entry["chunks"][0]


def edit_manifest_entry(path, name, edit):
    """Change member ``name``'s manifest entry in place with ``edit(entry)``; a valid manifest
    (crc and all) that no longer agrees with the records."""
    with ArchiveReader(path) as reader:
        manifest = dict(reader.manifest)
        data_end = reader.data_end
    edit(next(m for m in manifest["members"] if m["name"] == name))
    rewrite_manifest(path, data_end, manifest)


def rewrite_manifest(path, data_end, manifest):
    import zlib

    body = json.dumps(manifest).encode()
    with open(path, "r+b") as f:
        f.truncate(data_end)
        f.seek(data_end)
        f.write(struct.pack(">cIQ", b"M", 0, len(body)) + body)
        f.write(struct.pack(">8sQQI", b"MMOPSEND", data_end + 13, len(body), zlib.crc32(body)))


def truncation_points(path):
    """Name -> length to truncate to."""
    size = path.stat().st_size
    offset, length = chunks_of(path)[3]
    with ArchiveReader(path) as reader:
        data_start, data_end = reader.data_start, reader.data_end
    return {
        "inside the magic": 4,
        "inside the header record": data_start - 3,
        "right after the header record": data_start,
        "inside a chunk": offset + length // 2,
        "before the manifest": data_end,
        "inside the manifest": (data_end + size) // 2,
        "before the trailer": size - 28,
        "inside the trailer": size - 1,
    }


@pytest.mark.parametrize(
    "point",
    [
        "inside the magic",
        "inside the header record",
        "right after the header record",
        "inside a chunk",
        "before the manifest",
        "inside the manifest",
        "before the trailer",
        "inside the trailer",
    ],
)
def test_truncated_file_is_reported_as_truncated(make_archive, point):
    path = make_archive()
    os.truncate(path, truncation_points(path)[point])

    for check in (read_manifest, verify_archive, ArchiveReader):
        with pytest.raises(ArchiveError, match="truncated or incomplete") as exc:
            check(path)
        assert str(path) in str(exc.value)


def test_truncated_file_still_tells_who_started_it(make_archive):
    path = make_archive()
    os.truncate(path, chunks_of(path)[0][0] + 3)
    with pytest.raises(ArchiveError, match=r"started at .* by markdown-manager-ops \d"):
        read_manifest(path)


def test_garbled_manifest_is_reported_as_corrupt_not_truncated(make_archive):
    path = make_archive()
    with ArchiveReader(path) as reader:
        manifest_at = reader.data_end + 13
    flip(path, manifest_at + 10)  # the crc32 in the trailer no longer matches
    with pytest.raises(ArchiveError, match="is corrupt") as exc:
        read_manifest(path)
    assert "truncated" not in str(exc.value) and "never finished" not in str(exc.value)


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"format": "markdown-manager-ops", "members": []}).encode(),
        b"PGDMP\x01\x0e\x00" + b"\x00" * 100,
        b"",
        b"\x28\xb5\x2f\xfd" + b"\x00" * 64,
    ],
    ids=["json", "pg_dump custom", "empty", "bare zstd"],
)
def test_foreign_file_is_not_a_backup(tmp_path, content):
    path = tmp_path / "db.mmops"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=r"is not a markdown-manager-ops backup") as exc:
        read_manifest(path)
    assert str(path) in str(exc.value)
    assert not isinstance(exc.value, FormatVersionError)


@pytest.mark.parametrize("version,word", [(2, "newer"), (0, "old")])
def test_other_format_version_is_a_format_version_error(make_archive, version, word):
    path = make_archive()
    patch(path, 10, struct.pack(">H", version))
    for check in (read_manifest, verify_archive):
        with pytest.raises(FormatVersionError, match=word) as exc:
            check(path)
        assert exc.value.exit_code == 7
        assert f"version {version}" in str(exc.value)


def test_future_version_is_detected_even_when_the_rest_is_unknown(tmp_path):
    path = tmp_path / "future.mmops"
    path.write_bytes(b"\x89MMOPS\r\n\x1a\n" + struct.pack(">H", 9) + b"whatever comes in v9")
    with pytest.raises(FormatVersionError, match="upgrade"):
        read_manifest(path)


def test_missing_file_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        read_manifest(tmp_path / "nope.mmops")
