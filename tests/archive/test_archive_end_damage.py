"""A complete file damaged near its end is corrupt; only a file that is short is truncated.

The writer only appends, so a file cut short is an intact chain of records that stops early;
a byte flipped in the manifest, the trailer or a record header of a complete file is damage
and must be reported as such (not as "truncated … never finished").
"""

from __future__ import annotations

import os

import pytest

from ops.archive import ArchiveReader, read_manifest, verify_archive
from ops.errors import ArchiveError


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


def end_offsets(path):
    """Name -> offset of one byte to flip, all in the last part of the file."""
    size = path.stat().st_size
    with ArchiveReader(path) as reader:
        data_end = reader.data_end
    return {
        "manifest record type": data_end,
        "manifest record length": data_end + 12,
        "manifest JSON": (data_end + 13 + size - 28) // 2,
        "last byte of the manifest": size - 29,
        "trailer magic": size - 28,
        "trailer offset": size - 13 - 8,
        "trailer length": size - 5 - 8,
        "trailer crc": size - 1,
    }


@pytest.mark.parametrize(
    "where",
    [
        "manifest record type",
        "manifest record length",
        "manifest JSON",
        "last byte of the manifest",
        "trailer magic",
        "trailer offset",
        "trailer length",
        "trailer crc",
    ],
)
def test_one_flipped_byte_near_the_end_is_corrupt_not_truncated(make_archive, where):
    path = make_archive()
    flip(path, end_offsets(path)[where])
    for check in (read_manifest, verify_archive):
        with pytest.raises(ArchiveError, match="is corrupt") as exc:
            check(path)
        message = str(exc.value)
        assert "truncated" not in message and "never finished" not in message
        assert str(path) in message


def test_bytes_appended_after_the_trailer_are_corrupt(make_archive):
    path = make_archive()
    with open(path, "ab") as f:
        f.write(b"\x00" * 100)
    with pytest.raises(ArchiveError, match="is corrupt.*100 unexpected bytes"):
        read_manifest(path)


@pytest.mark.parametrize("cut", [1, 13, 27, 28, 29, 500])
def test_a_file_cut_near_its_end_is_still_truncated(make_archive, cut):
    path = make_archive()
    os.truncate(path, path.stat().st_size - cut)
    with pytest.raises(ArchiveError, match="truncated or incomplete.*never finished"):
        read_manifest(path)
