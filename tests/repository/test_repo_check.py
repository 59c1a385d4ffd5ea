"""`mmops repo check` proves stored backups intact without restoring them, against a real local
directory, SeaweedFS (S3) and fake-gcs-server: each object against its sidecar (size; the
sha256 of the stored bytes — recorded by the publish step — with --read-data), encrypted ones
without the identity, and with --identity the decrypted archive too. Nagios exit codes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops.archive import ArchiveWriter
from ops.crypto.age import generate_identity
from ops.repository import open_repository
from ops.repository.base import Repository, iter_read
from ops.repository.verified import list_backups, meta_name, read_sidecar
from ops.steps.publish import publish, write_meta
from tests.cli_helpers import MMOPS
from tests.jobs.test_repository_workflow import run

pytestmark = pytest.mark.storage

STAMPS = ["20261201T020000Z", "20261202T020000Z", "20261203T020000Z"]


@dataclass
class Store:
    spec: str
    env: dict[str, str]

    def open(self) -> Repository:
        return open_repository(self.spec, environ=self.env)

    def check(self, *args: str) -> tuple[int, list[str], str]:
        res = run("repo", "check", "--repo", self.spec, *args, env=self.env)
        assert "Traceback" not in res.stderr, res.stderr
        return res.returncode, res.stdout.splitlines(), res.stderr

    def check_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, lines, err = self.check("--json", *args)
        return code, json.loads("\n".join(lines))


@pytest.fixture(params=["dir", "s3", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "dir":
        return Store(str(tmp_path / "repo"), {})
    if request.param == "s3":
        seaweed = request.getfixturevalue("seaweed")
        return Store(f"s3://{seaweed.new_bucket()}/mm", seaweed.environ())
    fake_gcs = request.getfixturevalue("fake_gcs")
    return Store(f"gs://{fake_gcs.new_bucket()}/mm", fake_gcs.environ())


def write_archive(directory: Path, stamp: str, *, size: int = 300_000, seed: int = 1,
                  db: str = "db") -> Path:
    created = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    path = directory / f"{db}-{stamp}.mmops"
    directory.mkdir(parents=True, exist_ok=True)
    with ArchiveWriter(path, chunk_size=64 << 10) as writer:
        writer.add_member("schema/pre-data", "schema", b"CREATE TABLE t (id int);\n")
        with writer.open_member("data/public.t", "table-data") as member:
            member.write(random.Random(seed).randbytes(size))  # incompressible
        writer.add_member("schema/post-data", "schema", b"")
        writer.commit({"database": db, "created_at": created.isoformat()})
    return path


def put(repo: Repository, path: Path, encrypt_to: str | None = None) -> str:
    stamp = path.name.split("-")[-1].removesuffix(".mmops")
    created = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    meta = {"database": path.name.split("-")[0], "created_at": created.isoformat(),
            "kind": "full"}
    return publish(path, repo, encrypt_to=encrypt_to, meta=meta).name


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "key.txt"
    return path, generate_identity(path)


@pytest.fixture
def filled(store: Store, tmp_path: Path, key: tuple[Path, str]) -> list[str]:
    """Two plain backups and one age-encrypted one."""
    repo = store.open()
    names = [put(repo, write_archive(tmp_path / "plain", STAMPS[0], seed=1)),
             put(repo, write_archive(tmp_path / "plain", STAMPS[1], seed=2)),
             put(repo, write_archive(tmp_path / "plain", STAMPS[2], seed=3), key[1])]
    assert names[2].endswith(".mmops.age")
    return names


def stored_bytes(repo: Repository, name: str) -> bytes:
    source = repo.open(name)
    try:
        return b"".join(iter_read(source))
    finally:
        source.close()


def replace_object(repo: Repository, name: str, change: Callable[[bytes], bytes]) -> None:
    """Damage a stored object behind mmops's back (through the store's own protocol)."""
    data = change(stored_bytes(repo, name))
    repo.delete(name)
    sink = repo.create(name)
    sink.write(data)
    sink.commit()


def flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


# ---- the sidecar records the stored bytes' digest ------------------------------------------


def test_publish_records_the_sha256_and_size_of_the_stored_bytes_in_the_sidecar(
    store: Store, filled: list[str], tmp_path: Path
) -> None:
    repo = store.open()
    for name in filled:
        meta = read_sidecar(repo, name)
        data = stored_bytes(repo, name)
        assert meta.size == len(data)
        assert meta.stored_sha256 == hashlib.sha256(data).hexdigest()
    # for .age: the encrypted bytes as stored, not the plain file
    plain = (tmp_path / "plain" / filled[2].removesuffix(".age")).read_bytes()
    assert read_sidecar(repo, filled[2]).stored_sha256 != hashlib.sha256(plain).hexdigest()


def test_an_older_sidecar_without_a_digest_still_counts_and_is_a_warning(
    store: Store, filled: list[str]
) -> None:
    repo = store.open()
    name = filled[0]
    old = json.loads(stored_bytes(repo, meta_name(name)))
    del old["stored_sha256"]
    repo.delete(meta_name(name))
    write_meta(repo, name, old)
    assert name in [b.name for b in list_backups(repo).backups]

    code, lines, _ = store.check()
    assert code == 1, lines
    assert lines[0].startswith("REPO CHECK WARNING - ")
    assert [line for line in lines[1:] if name in line] == [
        f"WARNING: {name}: its sidecar records no sha256 of the stored bytes (published by an "
        "older mmops): only its size is checked; --read-data verifies its checksums"]
    # read in full, a plain backup proves itself by its own checksums instead
    code, lines, _ = store.check("--read-data", "all")
    assert code == 0, lines


# ---- repo check ----------------------------------------------------------------------------


def test_a_clean_repository_passes_with_every_object_read(store: Store,
                                                          filled: list[str]) -> None:
    code, lines, _ = store.check()
    assert code == 0, lines
    assert lines == [lines[0]] and lines[0].startswith("REPO CHECK OK - 3 backup(s) in ")
    code, result = store.check_json("--read-data", "all")
    assert code == 0, result
    assert result["status_name"] == "OK" and result["problems"] == []
    assert sorted(result["read"]) == sorted(filled)
    repo = store.open()
    assert result["bytes_read"] == sum(len(stored_bytes(repo, n)) for n in filled)


def test_a_flipped_byte_is_critical_with_read_data_all_and_named(
    store: Store, filled: list[str], key: tuple[Path, str]
) -> None:
    repo = store.open()
    for name in (filled[1], filled[2]):  # a plain and an encrypted object, same size
        replace_object(repo, name, flip)
    code, lines, _ = store.check()  # sizes alone cannot see it
    assert code == 0, lines
    code, lines, _ = store.check("--read-data", "all")
    assert code == 2, lines
    assert lines[0].startswith("REPO CHECK CRITICAL - 2 problem(s) with 3 backup(s)")
    damaged = "the sha256 of its stored bytes differs from the one its sidecar recorded"
    assert sorted(lines[1:]) == sorted(f"CRITICAL: {n}: {damaged} (the object is damaged)"
                                       for n in (filled[1], filled[2]))
    # with the identity too: the digest names the damage (not only age's failed authentication)
    code, again, _ = store.check("--read-data", "all", "--identity", str(key[0]))
    assert code == 2 and again[1:] == lines[1:], again


def test_a_truncated_object_is_critical_without_read_data(store: Store,
                                                          filled: list[str]) -> None:
    repo = store.open()
    size = len(stored_bytes(repo, filled[0]))
    replace_object(repo, filled[0], lambda data: data[: len(data) - 1000])
    code, lines, _ = store.check()
    assert code == 2, lines
    assert lines[1:] == [f"CRITICAL: {filled[0]}: not a verified backup: it has {size - 1000} "
                         f"bytes but its sidecar says {size}"]


def test_a_missing_sidecar_and_a_missing_object_each_have_their_message(
    store: Store, filled: list[str]
) -> None:
    """(A plain file in a local directory without a sidecar still proves itself by its
    manifest — `-o DIR` backups — so the encrypted one loses its sidecar here.)"""
    repo = store.open()
    repo.delete(meta_name(filled[2]))
    repo.delete(filled[1])
    code, lines, _ = store.check()
    assert code == 2, lines
    assert sorted(lines[1:]) == sorted([
        f"CRITICAL: {filled[2]}: not a verified backup: its sidecar {filled[2]}.meta.json "
        "is missing",
        f"CRITICAL: {filled[1]}: the object is missing (its sidecar {filled[1]}.meta.json is "
        "there)"])


def test_an_encrypted_backup_is_checked_without_the_identity_and_decrypted_with_it(
    store: Store, tmp_path: Path, key: tuple[Path, str]
) -> None:
    """The sidecar's digest proves the stored bytes without the identity; with --identity the
    decrypted archive is verified too: an archive damaged *before* it was encrypted passes the
    digest (the stored bytes are what was written) and fails only there."""
    repo = store.open()
    good = put(repo, write_archive(tmp_path / "p", STAMPS[0]), key[1])
    bad_plain = write_archive(tmp_path / "p", STAMPS[1], size=600_000)
    bad_plain.write_bytes(flip(bad_plain.read_bytes()))
    bad = put(repo, bad_plain, key[1])

    code, result = store.check_json("--read-data", "all")
    assert code == 0, result
    assert sorted(result["read"]) == sorted([good, bad])
    code, lines, _ = store.check("--read-data", "all", "--identity", str(key[0]))
    assert code == 2, lines
    assert len(lines) == 2 and lines[1].startswith(
        f"CRITICAL: {bad}: with the identity, it is not an intact backup: ")
    other = tmp_path / "other-key.txt"
    generate_identity(other)
    code, lines, _ = store.check("--read-data", "all", "--identity", str(other),
                                 "--database", "db")
    assert code == 2, lines
    assert {line.split(": ")[1] for line in lines[1:]} == {good, bad}
    assert all("the identity cannot decrypt it" in line for line in lines[1:])


def test_read_data_reads_a_deterministic_sample(store: Store, filled: list[str]) -> None:
    code, first = store.check_json("--read-data", "1", "--seed", "s1")
    assert code == 0, first
    assert len(first["read"]) == 1
    assert store.check_json("--read-data", "1", "--seed", "s1")[1]["read"] == first["read"]
    seen = {store.check_json("--read-data", "34%", "--seed", f"s{i}")[1]["read"][0]
            for i in range(8)}
    assert len(seen) > 1  # other seeds, other objects


def test_memory_stays_flat_reads_are_bounded_blocks_by_offset(store: Store,
                                                             tmp_path: Path) -> None:
    """A 20 MiB object is read in ≤ 8 MiB requests at increasing offsets, never whole."""
    from ops.jobs.repo_check import check_repository
    from ops.policy.repo_check import ReadData
    from ops.repository.digest import BLOCK

    repo = store.open()
    put(repo, write_archive(tmp_path / "p", STAMPS[0], size=20 << 20))
    requests: list[tuple[int, int]] = []

    class Spy:
        def __init__(self, inner: Any) -> None:
            self.inner, self.url = inner, inner.url

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.inner, attr)

        def open(self, name: str) -> Any:
            source = self.inner.open(name)
            real = source.read_at

            def read_at(offset: int, size: int) -> bytes:
                requests.append((offset, size))
                return real(offset, size)

            source.read_at = read_at
            return source

    result = check_repository(Spy(repo), read_data=ReadData("all", 100), seed="x")  # type: ignore[arg-type]
    assert result.status == 0 and result.bytes_read > 20 << 20
    big = [r for r in requests if r[1] > 64 << 10]
    assert len(big) >= 3 and max(size for _, size in big) <= BLOCK
    assert [offset for offset, _ in big] == sorted(offset for offset, _ in big)


def test_reading_a_large_object_in_full_keeps_the_process_small(tmp_path: Path) -> None:
    """Peak RSS of `repo check --read-data all` over a 192 MiB object stays within 48 MiB of
    the same check that reads nothing (measured in a child, isolated from pytest's)."""
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    name = "db-20261201T020000Z.mmops"
    sha, size = hashlib.sha256(), 0
    with (repo_dir / name).open("wb") as out:
        for _ in range(24):
            block = random.randbytes(8 << 20)
            out.write(block)
            sha.update(block)
            size += len(block)
    write_meta(open_repository(str(repo_dir)), name, {
        "database": "db", "created_at": "2026-12-01T02:00:00+00:00", "size": size,
        "encrypted": False, "kind": "full", "stored_sha256": sha.hexdigest()})

    def peak(*args: str) -> int:
        probe = ("import resource, subprocess, sys; "
                 "r = subprocess.run(sys.argv[1:], capture_output=True); "
                 "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", probe, str(MMOPS), "repo", "check",
                              "--repo", str(repo_dir), *args],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == "0", out
        return int(out[1]) * 1024

    assert peak("--read-data", "all") - peak() < 48 << 20


def _usage(args: list[str], env: dict[str, str] | None = None) -> list[str]:
    res = run("repo", "check", *args, env=env)
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stdout.startswith("REPO CHECK UNKNOWN - ") and "Traceback" not in res.stderr
    return res.stdout.splitlines()


def test_usage_errors_and_an_unreachable_store_are_unknown(tmp_path: Path) -> None:
    repo = str(tmp_path)
    assert "--read-data" in _usage(["--repo", repo, "--read-data", "half"])[0]
    assert "--read-data all" in _usage(["--repo", repo, "--identity", "k.txt"])[0]
    assert "whitespace" in _usage(["--repo", "s3://a/x gs://b/y /srv/bk"])[0]
    assert "'..'" in _usage(["--repo", "s3://bucket/a/../b"])[0]
    assert "Unknown repository type ftp://" in _usage(["--repo", "ftp://h/x"])[0]
    assert "not a directory" in _usage(["--repo", str(tmp_path / "nowhere")])[0]
    assert "No such option" in _usage(["--repo", repo, "--bogus"])[0]
    unreachable = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b",
                   "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1",
                   "AWS_MAX_ATTEMPTS": "1"}
    assert "cannot check s3://bucket/p" in _usage(["--repo", "s3://bucket/p"], unreachable)[0]


def test_an_empty_repository_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    res = run("repo", "check", "--repo", str(tmp_path / "repo"))
    assert res.returncode == 1 and res.stdout.startswith("REPO CHECK WARNING - no backup in ")




@pytest.mark.postgres
def test_a_real_backup_published_by_mmops_records_its_digest_and_checks_clean(
    pg15: Any, make_db: Any, tmp_path: Path, key: tuple[Path, str]
) -> None:
    """The whole workflow: `mmops backup --repo DIR` (plain and ENCRYPT_TO) → `repo check
    --read-data all` passes without the identity, and with it."""
    url = make_db(pg15)
    pg15.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, "
              "500);", url.database)
    repo = tmp_path / "repo"
    for extra in ([], ["--encrypt-to", key[1]]):
        res = run("backup", "--repo", str(repo), *extra, url=url)
        assert res.returncode == 0, res.stderr
    store = open_repository(str(repo))
    listed = list_backups(store).backups
    assert len(listed) == 2 and all(b.stored_sha256 for b in listed)
    for args in ([], ["--identity", str(key[0])]):
        res = run("repo", "check", "--repo", str(repo), "--read-data", "all", *args)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.startswith("REPO CHECK OK - 2 backup(s) in ")
