"""Decompression bombs: memory per chunk does not depend on what a file claims, and a frame
whose claims contradict the data (its header vs the chunk size, the manifest, its own content)
is refused — through `mmops verify` and the reader a restore uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from ops.archive import ArchiveReader, verify_archive
from ops.archive.format import PIECE
from ops.cli import main
from ops.errors import ArchiveError
from tests.archive.hostile import (
    bomb,
    craft,
    engine_like_archive,
    with_declared_size,
    with_window_log,
    zero_frame,
    zeros_sha256,
)
from tests.cli_helpers import MMOPS

MiB = 1 << 20

# Runs a command as its child and reports the child's peak RSS (RUSAGE_CHILDREN of a fresh
# process covers exactly that one command).
_PEAK = """
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps([r.returncode, r.stdout, r.stderr,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))
"""

# Reads a member the way a restore does (ArchiveReader.iter_member) and reports the pieces'
# largest size and how far the peak RSS rose while reading.
_READ = """
import json, resource, sys
from ops.archive import ArchiveReader
from ops.errors import ArchiveError
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with ArchiveReader(sys.argv[1]) as reader:
    before, total, biggest, error = peak(), 0, 0, None
    try:
        for piece in reader.iter_member("data/00000"):
            total += len(piece)
            biggest = max(biggest, len(piece))
    except ArchiveError as exc:
        error = str(exc)
print(json.dumps([total, biggest, peak() - before, error]))
"""


def peak_rss_mib(*command: str) -> tuple[int, str, str, float]:
    out = subprocess.run([sys.executable, "-c", _PEAK, *command], capture_output=True,
                         text=True, timeout=600, check=True)
    code, stdout, stderr, peak = json.loads(out.stdout)
    return code, stdout, stderr, peak


@pytest.fixture(scope="module")
def bomb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight 64 MiB chunks of zeros in ~70 KiB: the file's chunk size and the manifest agree."""
    return bomb(tmp_path_factory.mktemp("bomb") / "db-20261201T000000Z.mmops",
                frames=8, frame_raw=64 * MiB)


def test_mmops_verify_of_a_bomb_uses_no_more_memory_than_of_a_small_backup(
        bomb_file: Path, tmp_path: Path) -> None:
    assert bomb_file.stat().st_size < MiB
    small = engine_like_archive(tmp_path / "small.mmops")
    code, _out, err, baseline = peak_rss_mib(str(MMOPS), "verify", str(small))
    assert code == 0, err
    code, out, err, peak = peak_rss_mib(str(MMOPS), "verify", str(bomb_file))
    assert code == 0, err  # a consistent bomb is a valid (if silly) backup: it verifies
    assert "512.0 MiB of data" in out
    # Before: every chunk was decompressed whole, several at once (+256 MiB here).
    assert peak - baseline < 48, (baseline, peak)


def test_reading_a_bomb_member_as_a_restore_does_holds_one_piece_at_a_time(
        bomb_file: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _READ, str(bomb_file)], capture_output=True,
                         text=True, timeout=600, check=True, cwd=Path(__file__).parents[2])
    total, biggest, rise, error = json.loads(out.stdout)
    assert error is None and total == 512 * MiB
    assert biggest <= PIECE
    assert rise < 48, rise


def test_reading_a_bomb_member_whole_is_refused_before_decompressing(bomb_file: Path) -> None:
    with ArchiveReader(bomb_file) as reader, pytest.raises(ArchiveError, match="more than"):
        reader.read_member("data/00000")


def _frames_case(name: str) -> tuple[list[bytes], int, int]:
    """(frames, chunk size, raw size listed) of a file whose claims contradict its data."""
    one = zero_frame(MiB)
    big = zstandard.ZstdCompressor(level=1, write_checksum=True, write_content_size=True)
    cases = {
        # the frame declares more than the file's chunk size
        "frame above the chunk size": ([one], 64 << 10, MiB),
        # the frames declare more than the manifest lists for the member
        "frames above the manifest's size": ([one, one], 2 * MiB, MiB + 10),
        # the frame declares 1,000 bytes and holds a MiB
        "frame holds more than it declares": ([with_declared_size(one, 1000)], MiB, 1000),
        # the frame declares 2 MiB and holds one
        "frame holds less than it declares": ([with_declared_size(one, 2 * MiB)], 2 * MiB,
                                              2 * MiB),
        # a 1 GiB window (a decoder would allocate it) for 4 MiB of data
        "frame asks for a 1 GiB window": ([with_window_log(big.compress(bytes(4 * MiB)), 30)],
                                          4 * MiB, 4 * MiB),
        "frame without a content size": ([zstandard.ZstdCompressor(
            write_checksum=True, write_content_size=False).compress(bytes(1000))], MiB, 1000),
        "frame without a checksum": ([zstandard.ZstdCompressor(
            write_checksum=False, write_content_size=True).compress(bytes(1000))], MiB, 1000),
        "not a zstd frame": ([b"\x00" * 100], MiB, 100),
        # all its data, but not its checksum (the record's length agrees)
        "frame cut before its checksum": ([one[:-4]], MiB, MiB),
        # a second frame after the first, inside the same record
        "two frames in one chunk": ([one + one], 2 * MiB, 2 * MiB),
    }
    return cases[name]


CONTRADICTIONS = ["frame above the chunk size", "frames above the manifest's size",
                  "frame holds more than it declares", "frame holds less than it declares",
                  "frame asks for a 1 GiB window", "frame without a content size",
                  "frame without a checksum", "not a zstd frame",
                  "frame cut before its checksum", "two frames in one chunk"]


@pytest.mark.parametrize("case", CONTRADICTIONS)
def test_a_frame_whose_claims_contradict_the_data_is_refused(case: str, tmp_path: Path) -> None:
    frames, chunk_size, raw_size = _frames_case(case)
    path = craft(tmp_path / "x.mmops", frames, chunk_size=chunk_size, raw_size=raw_size,
                 sha256=zeros_sha256(raw_size))

    with pytest.raises(ArchiveError, match="data/00000") as exc:
        verify_archive(path)
    assert exc.value.exit_code == 6
    with ArchiveReader(path) as reader, pytest.raises(ArchiveError, match="data/00000"):
        for _ in reader.iter_member("data/00000"):
            pass
    res = CliRunner().invoke(main, ["verify", str(path)])
    assert res.exit_code == 6, res.output
    assert [line for line in res.output.splitlines() if line] == [
        line for line in res.output.splitlines() if line.startswith("error: Backup file")
    ] and len(res.output.splitlines()) == 1, res.output


def test_the_refusal_names_the_claim(tmp_path: Path) -> None:
    frames, chunk_size, raw_size = _frames_case("frame above the chunk size")
    path = craft(tmp_path / "x.mmops", frames, chunk_size=chunk_size, raw_size=raw_size)
    with pytest.raises(ArchiveError, match=r"declares 1048576 raw bytes, more than the 65536"):
        verify_archive(path)
    frames, chunk_size, raw_size = _frames_case("frames above the manifest's size")
    path = craft(tmp_path / "y.mmops", frames, chunk_size=chunk_size, raw_size=raw_size)
    with pytest.raises(ArchiveError, match=r"chunk 1 .* more than the 10 it may hold"):
        verify_archive(path)
