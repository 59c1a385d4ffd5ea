"""Hostile manifests (valid crc, hostile content) are refused before anything reads them: one
ArchiveError sentence (exit 6) from the reader, `verify`, `inspect`, `export` — never a
traceback, never a pass. Unknown keys of a newer writer are tolerated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ops.archive import ArchiveReader, read_manifest, verify_archive
from ops.archive.format import MAX_MANIFEST
from ops.cli import main
from ops.errors import ArchiveError
from tests.archive.hostile import (
    TABLE,
    craft,
    edit_manifest,
    engine_like_archive,
    replace_manifest,
    zero_frame,
)
from tests.cli_helpers import mmops


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _table(m: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**m, "tables": [{**m["tables"][0], **changes}]}


def _member(m: dict[str, Any], index: int = 1, **changes: Any) -> dict[str, Any]:
    members = list(m["members"])
    members[index] = {**members[index], **changes}
    return {**m, "members": members}


def _deeply_nested_unknown_key(m: dict[str, Any]) -> bytes:
    text = json.dumps(m)
    return (text[:-1] + ', "x": ' + "[" * 200_000 + "]" * 200_000 + "}").encode()


HOSTILE = {
    "nested 200,000 deep": _deeply_nested_unknown_key,
    "nested one level too deep": lambda m: {**m, "future": _deep(8)},
    "tables is a string": lambda m: {**m, "tables": "x"},
    "tables is missing": lambda m: {k: v for k, v in m.items() if k != "tables"},
    "a row count is a string": lambda m: _table(m, rows="many"),
    "a row count is negative": lambda m: _table(m, rows=-1),
    "a row count is a boolean": lambda m: _table(m, rows=True),
    "a row count is a fraction": lambda m: _table(m, rows=1.5),
    "a row count overflows bigint": lambda m: _table(m, rows=10**30),
    "a table name is 10,000 characters": lambda m: _table(m, name="n" * 10_000),
    "a table name is empty": lambda m: _table(m, name=""),
    "a column is a number": lambda m: _table(m, columns=["id", 5]),
    "1601 columns": lambda m: _table(m, columns=[f"c{i}" for i in range(1601)]),
    "a table's member is not listed": lambda m: _table(m, member="data/99999"),
    "a table's sizes disagree with its member": lambda m: _table(m, raw_bytes=1),
    "a table's data is the schema member": lambda m: _table(m, member="schema.json"),
    "a table is listed twice": lambda m: {**m, "tables": m["tables"] * 2},
    "a table entry is a list": lambda m: {**m, "tables": [["public", "notes"]]},
    "members is an object": lambda m: {**m, "members": {"a": 1}},
    "a member name has a newline": lambda m: _member(m, name="data/\n00000"),
    "a member name climbs out": lambda m: _member(m, name="../../etc/passwd"),
    "a member kind is not a word": lambda m: _member(m, kind="Table Data; DROP"),
    "a chunk entry has one number": lambda m: _member(m, chunks=[[100]]),
    "a chunk offset is negative": lambda m: _member(
        m, chunks=[[-5, c[1]] for c in m["members"][1]["chunks"]]),
    "chunk count disagrees": lambda m: _member(m, chunk_count=99),
    "stored size disagrees": lambda m: _member(m, stored_size=1),
    "sha256 is not hex": lambda m: _member(m, sha256="Z" * 64),
    "two members share a chunk": lambda m: _member(
        m, 0, chunks=m["members"][1]["chunks"][:1], chunk_count=1,
        stored_size=m["members"][1]["chunks"][0][1]),
    "alembic revision is an object": lambda m: {**m, "alembic_revision": {"a": 1}},
    "database is a list": lambda m: {**m, "database": ["db"]},
    "partial is a string": lambda m: {**m, "partial": "yes"},
    "sequences is negative": lambda m: {**m, "sequences": -3},
    "schemas holds a number": lambda m: {**m, "schemas": ["public", 1]},
    "created_at is not a time": lambda m: {**m, "created_at": "yesterday"},
    "format version is a string": lambda m: {**m, "format_version": "1"},
    "another format": lambda m: {**m, "format": "tar"},
    "the manifest is an array": lambda m: b"[1, 2, 3]",
    "the manifest is not UTF-8": lambda m: b'{"format": "\xff\xfe"}',
    "the manifest is not JSON": lambda m: b'{"format": NaN}',
    "the manifest is larger than allowed": lambda m: json.dumps(m).encode()[:-1]
    + b', "pad": "' + b"x" * MAX_MANIFEST + b'"}',
}


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = engine_like_archive(tmp_path / "db-20261201T000000Z.mmops")
    return edit_manifest(path, HOSTILE[request.param])


def test_every_hostile_manifest_is_one_archive_error_from_the_reader(hostile: Path) -> None:
    with pytest.raises(ArchiveError, match="has an invalid manifest") as exc:
        read_manifest(hostile)
    assert exc.value.exit_code == 6
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 400
    with pytest.raises(ArchiveError, match="has an invalid manifest"):
        verify_archive(hostile)


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "--json"], ["verify"],
                                     ["export", "-o", "out.sql"]])
def test_every_command_refuses_a_hostile_manifest_with_exit_6(
        hostile: Path, command: list[str], tmp_path: Path) -> None:
    args = [a if a != "out.sql" else str(tmp_path / "out.sql") for a in command]
    res = CliRunner().invoke(main, [*args, str(hostile)])
    assert res.exit_code == 6, (res.output, res.exception)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit)
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "invalid manifest" in errors[0], res.output
    assert not (tmp_path / "out.sql").exists()


@pytest.mark.parametrize("case", ["nested 200,000 deep", "tables is a string",
                                  "a row count is a string"])
def test_the_console_script_says_one_sentence_for_the_issues_cases(
        case: str, tmp_path: Path) -> None:
    path = edit_manifest(engine_like_archive(tmp_path / "x.mmops"), HOSTILE[case])
    for command in ("inspect", "verify"):
        res = mmops(command, str(path))
        assert res.returncode == 6, (command, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        assert res.stderr.count("error:") == 1 and "invalid manifest" in res.stderr


def test_unknown_keys_of_a_newer_writer_are_kept_and_a_new_member_kind_is_accepted(
        tmp_path: Path) -> None:
    path = engine_like_archive(tmp_path / "x.mmops")
    future = {"globals_format": "pg_dumpall-custom", "globals_version": "18.1",
              "roles": [{"oid": 16385, "owner": "app", "sizes": [1, 2]}]}
    edit_manifest(path, lambda m: {**_member(m, 0, kind="pg_dump"), **future})

    manifest = read_manifest(path)
    assert {k: manifest[k] for k in future} == future
    assert manifest["tables"] == [TABLE] and manifest["members"][0]["kind"] == "pg_dump"
    with ArchiveReader(path) as reader:
        assert reader.members[0].kind == "pg_dump"
    res = CliRunner().invoke(main, ["inspect", str(path)])
    assert res.exit_code == 0, res.output
    assert "public.notes" in res.output


def test_a_hostile_header_record_is_one_archive_error(tmp_path: Path) -> None:
    frame = zero_frame(10)
    cases = {
        "deep": b'{"chunk_size": 100, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        "chunk size is a string": b'{"chunk_size": "100"}',
        "chunk size is negative": b'{"chunk_size": -1}',
        "an array": b"[]",
    }
    for name, body in cases.items():
        path = craft(tmp_path / f"{len(name)}.mmops", [frame], chunk_size=100, raw_size=10)
        data = path.read_bytes()
        start = data.index(b'{"chunk_size"')
        end = data.index(b"}", start) + 1
        # Same length as the original header, padded with spaces, so offsets still hold;
        # a longer one rebuilds the file around it.
        if len(body) <= end - start:
            path.write_bytes(data[:start] + body.ljust(end - start) + data[end:])
        else:
            path = _with_header(tmp_path / f"h{len(name)}.mmops", body)
        with pytest.raises(ArchiveError, match="header"):
            read_manifest(path)
        res = CliRunner().invoke(main, ["verify", str(path)])
        assert res.exit_code == 6 and res.output.count("error:") == 1, (name, res.output)


def _with_header(path: Path, body: bytes) -> Path:
    from ops.archive.format import (
        REC_HEADER,
        REC_MANIFEST,
        RECORD_HEADER_SIZE,
        pack_fixed_header,
        pack_record_header,
        pack_trailer,
    )

    out = pack_fixed_header() + pack_record_header(REC_HEADER, 0, len(body)) + body
    manifest = b"{}"
    offset = len(out) + RECORD_HEADER_SIZE
    out += pack_record_header(REC_MANIFEST, 0, len(manifest)) + manifest
    path.write_bytes(out + pack_trailer(offset, manifest))
    return path


def test_a_sane_manifest_still_reads_as_a_plain_dict(tmp_path: Path) -> None:
    path = engine_like_archive(tmp_path / "x.mmops")
    manifest = read_manifest(path)
    assert manifest["tables"] == [TABLE]
    assert manifest["schemas"] == ["public"] and manifest["alembic_revision"] == "abc123"
    assert isinstance(manifest["created_at"], str)
    assert verify_archive(path).ok
    replace_manifest(path, json.dumps(manifest).encode())
    assert read_manifest(path) == manifest
