"""Fuzzing the reader (hypothesis): truncations, bit flips, hostile manifests and hostile zstd
frame headers. Whatever the bytes, opening, verifying and reading every member either works or
raises ArchiveError — never another exception — and Python's peak memory stays bounded."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.archive import ArchiveReader, read_manifest, verify_archive
from ops.archive.format import RECORD_HEADER_SIZE, pack_record_header, pack_trailer
from ops.cli import main
from ops.errors import ArchiveError
from tests.archive.hostile import bomb, craft, engine_like_archive, zero_frame, zeros_sha256

MiB = 1 << 20
SCRATCH = Path(tempfile.mkdtemp(prefix="mmops-fuzz-")) / "fuzz.mmops"
PEAK_LIMIT = 24 * MiB  # a few pieces and frames; the files below claim up to 64 MiB per chunk
FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class BytesSource:
    """A backup held in memory, read by offset (what the reader takes from object stores)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.url = "fuzz.mmops"

    def read_at(self, offset: int, size: int) -> bytes:
        return self.data[offset:offset + size]


def exercise(data: bytes) -> None:
    """Everything a command does with a backup: inspect, verify, read every member; then the
    real `mmops inspect`, which prints the manifest's tables and sums their rows."""
    source = BytesSource(data)
    tracemalloc.start()
    try:
        for step in (_inspect, _verify, _read_members):
            try:
                step(source)
            except ArchiveError as exc:
                assert str(exc) and "\n" not in str(exc)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, peak
    SCRATCH.write_bytes(data)
    res = CliRunner().invoke(main, ["inspect", str(SCRATCH)])
    assert res.exit_code in (0, 6), (res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


def _inspect(source: BytesSource) -> None:
    json.dumps(read_manifest(source))  # what `inspect --json` prints


def _verify(source: BytesSource) -> None:
    verify_archive(source)


def _read_members(source: BytesSource) -> None:
    with ArchiveReader(source) as reader:
        for member in reader.members:
            for _piece in reader.iter_member(member.name):
                pass


@pytest.fixture(scope="module")
def engine_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return engine_like_archive(tmp_path_factory.mktemp("fuzz") / "a.mmops").read_bytes()


@pytest.fixture(scope="module")
def big_chunk_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Chunk size 64 MiB in the header: frame headers may claim that much."""
    piece = 256 << 10
    path = craft(tmp_path_factory.mktemp("fuzz") / "b.mmops", [zero_frame(piece)] * 3,
                 chunk_size=64 * MiB, raw_size=3 * piece, sha256=zeros_sha256(3 * piece))
    return path.read_bytes()


def test_the_unharmed_files_pass(engine_file: bytes, big_chunk_file: bytes,
                                 bomb_file: bytes) -> None:
    for data in (engine_file, big_chunk_file, bomb_file):
        verify_archive(BytesSource(data))
        exercise(data)


@FUZZ
@given(cut=st.integers(min_value=0), which=st.booleans())
def test_truncated_files(engine_file: bytes, big_chunk_file: bytes, cut: int,
                         which: bool) -> None:
    data = engine_file if which else big_chunk_file
    exercise(data[: cut % (len(data) + 1)])


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 7)), min_size=1,
                      max_size=8), which=st.booleans())
def test_bit_flips(engine_file: bytes, big_chunk_file: bytes,
                   flips: list[tuple[int, int]], which: bool) -> None:
    data = bytearray(engine_file if which else big_chunk_file)
    for where, bit in flips:
        data[where % len(data)] ^= 1 << bit
    exercise(bytes(data))


def _chunk_offsets(data: bytes) -> list[int]:
    with ArchiveReader(BytesSource(data)) as reader:
        return [offset for m in reader.members for offset, _ in m.chunks]


@pytest.fixture(scope="module")
def bomb_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Two 32 MiB chunks of zeros in a few KiB: whole chunks in memory would pass PEAK_LIMIT."""
    return bomb(tmp_path_factory.mktemp("fuzz") / "c.mmops", frames=2,
                frame_raw=32 * MiB).read_bytes()


@FUZZ
@given(index=st.integers(min_value=0), head=st.binary(min_size=1, max_size=18),
       keep_magic=st.booleans())
def test_hostile_frame_headers(big_chunk_file: bytes, engine_file: bytes, index: int,
                               head: bytes, keep_magic: bool) -> None:
    for base in (big_chunk_file, engine_file):
        offsets = _chunk_offsets(base)
        at = offsets[index % len(offsets)]
        if keep_magic:  # past the magic: a zstd frame header that says anything
            at += 4
        data = base[:at] + head + base[at + len(head):]
        exercise(data[: len(base)])


@settings(FUZZ, max_examples=25)
@given(index=st.integers(min_value=0), head=st.binary(min_size=1, max_size=14))
def test_hostile_frame_headers_of_a_bomb(bomb_file: bytes, index: int, head: bytes) -> None:
    offsets = _chunk_offsets(bomb_file)
    at = offsets[index % len(offsets)] + 4  # past the magic: the header says anything
    exercise(bomb_file[:at] + head + bomb_file[at + len(head):])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)


def _with_manifest(data: bytes, body: bytes) -> bytes:
    """``data`` with its manifest record replaced by ``body`` (crc and all)."""
    with ArchiveReader(BytesSource(data)) as reader:
        data_end = reader.data_end
    return (data[:data_end] + pack_record_header(b"M", 0, len(body)) + body
            + pack_trailer(data_end + RECORD_HEADER_SIZE, body))


def _paths(manifest: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every place in the manifest a value could be replaced (container, key)."""
    found: list[tuple[Any, ...]] = []
    for key in manifest:
        found.append((manifest, key))
    for group in ("tables", "members"):
        for entry in manifest.get(group, []):
            found += [(entry, key) for key in entry]
    return found


@FUZZ
@given(where=st.integers(min_value=0), value=JSON_VALUES, drop=st.booleans())
def test_hostile_manifest_values(engine_file: bytes, where: int, value: Any,
                                 drop: bool) -> None:
    with ArchiveReader(BytesSource(engine_file)) as reader:
        manifest = json.loads(json.dumps(reader.manifest))
    paths = _paths(manifest)
    container, key = paths[where % len(paths)]
    if drop:
        del container[key]
    else:
        container[key] = value
    exercise(_with_manifest(engine_file, json.dumps(manifest).encode()))


@FUZZ
@given(depth=st.integers(1, 50_000), opener=st.sampled_from(["[", '{"a":']),
       where=st.sampled_from(["whole", "unknown key", "tables"]))
def test_deeply_nested_manifests(engine_file: bytes, depth: int, opener: str,
                                 where: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    text = json.dumps(read_manifest(BytesSource(engine_file)))
    body = {
        "whole": nested,
        "unknown key": text[:-1] + ', "x": ' + nested + "}",
        "tables": text.replace('"tables": [', '"tables": [' + nested + ", ", 1),
    }[where]
    exercise(_with_manifest(engine_file, body.encode()))


@FUZZ
@given(body=st.binary(max_size=2000))
def test_arbitrary_manifest_bytes(engine_file: bytes, body: bytes) -> None:
    exercise(_with_manifest(engine_file, body))


def test_fuzz_helpers_put_the_manifest_where_the_reader_finds_it(engine_file: bytes) -> None:
    body = json.dumps(read_manifest(BytesSource(engine_file))).encode()
    same = _with_manifest(engine_file, body)
    assert read_manifest(BytesSource(same)) == read_manifest(BytesSource(engine_file))
