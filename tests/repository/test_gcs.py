"""GCS repositories against a real GCS emulator (fake-gcs-server) started by the session."""

from __future__ import annotations

import pytest

from ops.errors import RepositoryError
from ops.repository import open_repository
from ops.repository.base import Repository, iter_read
from ops.repository.gcs import GCSRepository

from .faults import FaultProxy
from .servers import FakeGcs
from .test_s3 import payload

pytestmark = pytest.mark.storage

CHUNK = 256 << 10  # the smallest resumable chunk, so 3 MiB is a dozen requests


def repo_for(fake_gcs: FakeGcs, bucket: str, prefix: str = "backups") -> GCSRepository:
    repo = open_repository(
        f"gs://{bucket}/{prefix}", environ=fake_gcs.environ(), chunk_size=CHUNK
    )
    assert isinstance(repo, GCSRepository)
    return repo


def upload(repo: GCSRepository, name: str, data: bytes, piece: int = 100_000) -> None:
    sink = repo.create(name)
    for start in range(0, len(data), piece):
        sink.write(data[start : start + piece])
    sink.commit()


def test_gcs_repository_satisfies_the_protocol(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    assert isinstance(repo_for(fake_gcs, gcs_bucket), Repository)


def test_gcs_round_trip_in_many_chunks(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    data = payload(3 * (1 << 20) + 777, seed=7)
    upload(repo, "db-20260101T000000Z.mmops", data)
    source = repo.open("db-20260101T000000Z.mmops")
    assert source.size == len(data)
    assert b"".join(iter_read(source, block=1 << 20)) == data


def test_gcs_ranged_reads_return_exactly_the_asked_bytes(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    data = payload(1 << 20, seed=8)
    upload(repo, "r", data)
    source = repo.open("r")
    for offset, size in [(0, 1), (5, 12), (CHUNK - 3, 7), (len(data) - 10, 10)]:
        assert source.read_at(offset, size) == data[offset : offset + size]
    assert source.read_at(len(data) - 4, 100) == data[-4:]
    assert source.read_at(len(data), 10) == b""


def test_gcs_list_with_prefix_gives_relative_names(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    repo = repo_for(fake_gcs, gcs_bucket, prefix="a/b")
    upload(repo, "db-20260101T000000Z.mmops", b"1")
    upload(repo, "meta/x.json", b"22")
    upload(repo_for(fake_gcs, gcs_bucket, prefix="other"), "y", b"3")
    # one prefix is one repository: keys below it (meta/x.json) belong to another
    assert sorted((e.name, e.size) for e in repo.list()) == [("db-20260101T000000Z.mmops", 1)]


def test_gcs_object_appears_only_at_commit_and_abort_leaves_nothing(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    sink = repo.create("db-20260101T000000Z.mmops")
    sink.write(payload(CHUNK * 3 + 5))  # three chunks sent already
    assert repo.list() == []
    sink.abort()
    sink.abort()
    assert repo.list() == []
    with pytest.raises(RepositoryError, match="already aborted"):
        sink.write(b"x")


def test_gcs_create_refuses_an_existing_name(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    upload(repo, "same", b"first")
    with pytest.raises(RepositoryError, match="already exists; refusing to overwrite"):
        repo.create("same")


def test_gcs_upload_session_carries_the_no_overwrite_precondition(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    with FaultProxy(fake_gcs.endpoint, lambda method, path: None) as proxy:
        env = {**fake_gcs.environ(), "STORAGE_EMULATOR_HOST": proxy.url}
        repo = open_repository(f"gs://{gcs_bucket}/p", environ=env, chunk_size=CHUNK)
        upload(repo, "x", payload(CHUNK + 1))
    starts = [p for m, p, _v in proxy.seen if m == "POST" and "uploadType=resumable" in p]
    assert len(starts) == 1 and "ifGenerationMatch=0" in starts[0]


@pytest.mark.xfail(
    strict=True,
    reason="fake-gcs-server 1.54 ignores ifGenerationMatch on resumable uploads (GCS honours "
    "it, see the test above for what is sent); strict: remove this mark when the emulator does",
)
def test_gcs_precondition_stops_a_racing_second_writer(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    first = repo.create("same")
    second = repo.create("same")  # both checked before either committed
    first.write(b"first")
    second.write(b"second")
    first.commit()
    with pytest.raises(RepositoryError, match="already exists") as caught:
        second.commit()
    assert caught.value.exit_code == 12
    assert repo.open("same").read_at(0, 100) == b"first"


def test_gcs_delete_and_missing_objects(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    upload(repo, "x", b"x")
    repo.delete("x")
    repo.delete("x")
    assert repo.list() == []
    with pytest.raises(RepositoryError, match="gs://.*/backups/x does not exist"):
        repo.open("x")


def test_gcs_missing_bucket_is_named(fake_gcs: FakeGcs) -> None:
    repo = repo_for(fake_gcs, "no-such-bucket-here")
    with pytest.raises(RepositoryError, match="'no-such-bucket-here' does not exist"):
        repo.check()
    with pytest.raises(RepositoryError) as caught:
        repo.list()
    assert "no-such-bucket-here" in str(caught.value)


def test_gcs_lock_is_exclusive_and_released(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    repo = repo_for(fake_gcs, gcs_bucket)
    with repo.lock():
        with pytest.raises(RepositoryError, match="locked by another mmops"):
            with repo_for(fake_gcs, gcs_bucket).lock():
                pass
    with repo.lock():
        pass
    assert repo.list() == []


def test_gcs_refuses_object_lock_with_a_pointer_to_retention_policies(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    with pytest.raises(RepositoryError, match="retention policy"):
        repo_for(fake_gcs, gcs_bucket).create("x", lock_days=3)
