"""S3 repositories against a real S3 server (SeaweedFS) started by the session."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest

from ops.errors import RepositoryError
from ops.repository import open_repository
from ops.repository.base import Repository, iter_read
from ops.repository.parts import MiB
from ops.repository.s3 import S3Repository

from .faults import FaultProxy
from .servers import SeaweedS3

pytestmark = pytest.mark.storage

PART = 5 * MiB  # S3's smallest part, so a 20 MiB object is four parts


def payload(size: int, seed: int = 0) -> bytes:
    """Incompressible, position-dependent bytes: a misplaced range shows."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 32
        counter += 1
    return bytes(out[:size])


def repo_for(seaweed: SeaweedS3, bucket: str, prefix: str = "backups", **options) -> S3Repository:
    repo = open_repository(f"s3://{bucket}/{prefix}", environ=seaweed.environ(), **options)
    assert isinstance(repo, S3Repository)
    return repo


def upload(repo: S3Repository, name: str, data: bytes, piece: int = 1 << 20, **kw) -> None:
    sink = repo.create(name, **kw)
    for start in range(0, len(data), piece):
        sink.write(data[start : start + piece])
    sink.commit()


def multipart_uploads(seaweed: SeaweedS3, bucket: str) -> list[dict]:
    return seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_s3_repository_satisfies_the_protocol(seaweed: SeaweedS3, s3_bucket: str) -> None:
    assert isinstance(repo_for(seaweed, s3_bucket), Repository)


def test_multipart_object_round_trips_in_equal_parts(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket, part_size=PART)
    data = payload(20 * MiB + 12345)
    sink = repo.create("db-20260101T000000Z.mmops")
    sink.write(data[: 3 * MiB])
    sink.write(data[3 * MiB :])  # one big write spanning parts
    assert sink.upload_id is not None  # it went multipart
    sink.commit()

    source = repo.open("db-20260101T000000Z.mmops")
    assert source.size == len(data)
    assert b"".join(iter_read(source, block=3 * MiB)) == data
    head = seaweed.client().head_object(
        Bucket=s3_bucket, Key="backups/db-20260101T000000Z.mmops", PartNumber=1
    )
    assert head["ContentLength"] == PART  # part 1 is a full part; the store counted 5 parts
    assert head.get("PartsCount", 5) == 5


def test_small_object_is_one_put_and_round_trips(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket)
    sink = repo.create("small.mmops")
    sink.write(b"hello ")
    sink.write(memoryview(b"world"))
    assert sink.upload_id is None
    sink.commit()
    assert repo.open("small.mmops").read_at(0, 100) == b"hello world"


def test_empty_object_round_trips(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket)
    repo.create("empty").commit()
    source = repo.open("empty")
    assert source.size == 0
    assert source.read_at(0, 10) == b""


def test_ranged_reads_return_exactly_the_asked_bytes(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket, part_size=PART)
    data = payload(11 * MiB, seed=3)
    upload(repo, "r.mmops", data)
    source = repo.open("r.mmops")
    for offset, size in [(0, 1), (0, 12), (PART - 3, 7), (len(data) - 10, 10), (123457, 2 * MiB)]:
        assert source.read_at(offset, size) == data[offset : offset + size]
    assert source.read_at(len(data) - 4, 100) == data[-4:]  # fewer only at the end
    assert source.read_at(len(data), 10) == b""


def test_list_with_prefix_gives_names_relative_to_the_repository(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    repo = repo_for(seaweed, s3_bucket, prefix="team/backups")
    other = repo_for(seaweed, s3_bucket, prefix="elsewhere")
    for name in ["db-20260101T000000Z.mmops", "db-20260102T000000Z.mmops", "meta/x.json"]:
        upload(repo, name, name.encode())
    upload(other, "db-20260103T000000Z.mmops", b"x")

    # one prefix is one repository: keys below it (meta/x.json) belong to another
    assert sorted(e.name for e in repo.list()) == [
        "db-20260101T000000Z.mmops",
        "db-20260102T000000Z.mmops",
    ]
    assert [e.name for e in repo.list("db-20260102")] == ["db-20260102T000000Z.mmops"]
    assert all(e.modified is not None for e in repo.list())


def test_object_appears_under_its_name_only_at_commit(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket, part_size=PART)
    sink = repo.create("db-20260101T000000Z.mmops")
    sink.write(payload(12 * MiB))  # two parts are on the server already
    assert sink.upload_id is not None
    assert repo.list() == []
    with pytest.raises(RepositoryError):
        repo.open("db-20260101T000000Z.mmops")
    sink.commit()
    assert [e.name for e in repo.list()] == ["db-20260101T000000Z.mmops"]


def test_abort_leaves_no_object_and_no_multipart_upload(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket, part_size=PART)
    sink = repo.create("db-20260101T000000Z.mmops")
    sink.write(payload(16 * MiB))
    assert multipart_uploads(seaweed, s3_bucket)  # the parts really were uploaded
    sink.abort()
    sink.abort()  # idempotent
    assert multipart_uploads(seaweed, s3_bucket) == []
    assert repo.list() == []
    with pytest.raises(RepositoryError, match="already aborted"):
        sink.write(b"more")


def test_create_refuses_to_overwrite_an_existing_object(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket, part_size=PART)
    upload(repo, "db-20260101T000000Z.mmops", b"first")
    with pytest.raises(RepositoryError, match="already exists; refusing to overwrite"):
        repo.create("db-20260101T000000Z.mmops")


def test_racing_creates_let_only_the_first_commit_win(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket, part_size=PART)
    first = repo.create("same")
    second = repo.create("same")  # both checked before either committed
    second.write(payload(6 * MiB, seed=2))
    first.write(b"first")
    first.commit()
    with pytest.raises(RepositoryError, match="already exists"):
        second.commit()
    assert repo.open("same").read_at(0, 100) == b"first"
    assert multipart_uploads(seaweed, s3_bucket) == []


def test_transient_5xx_on_parts_is_retried_and_the_upload_succeeds(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    failures = {"left": 3}

    def rule(method: str, path: str) -> int | None:
        if method == "PUT" and "partNumber=" in path and failures["left"] > 0:
            failures["left"] -= 1
            return 503
        return None

    data = payload(17 * MiB, seed=5)
    with FaultProxy(seaweed.endpoint, rule) as proxy:
        env = seaweed.environ(AWS_ENDPOINT_URL=proxy.url)
        repo = open_repository(f"s3://{s3_bucket}/p", environ=env, part_size=PART)
        upload(repo, "db-20260101T000000Z.mmops", data)
    assert failures["left"] == 0
    assert sum(1 for _m, _p, verdict in proxy.seen if verdict == 503) == 3
    source = repo_for(seaweed, s3_bucket, prefix="p").open("db-20260101T000000Z.mmops")
    assert b"".join(iter_read(source)) == data


def test_a_part_that_keeps_failing_aborts_the_upload(seaweed: SeaweedS3, s3_bucket: str) -> None:
    def rule(method: str, path: str) -> str | None:
        return "reset" if method == "PUT" and "partNumber=2" in path else None

    with FaultProxy(seaweed.endpoint, rule) as proxy:
        env = seaweed.environ(AWS_ENDPOINT_URL=proxy.url)
        repo = open_repository(f"s3://{s3_bucket}/p", environ=env, part_size=PART,
                               max_attempts=2)
        sink = repo.create("db-20260101T000000Z.mmops")
        with pytest.raises(RepositoryError) as caught:
            sink.write(payload(12 * MiB))
            sink.commit()
    assert caught.value.exit_code == 12
    assert "part 2" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert any(m == "DELETE" and "uploadId=" in p for m, p, _v in proxy.seen)  # abort was sent
    assert multipart_uploads(seaweed, s3_bucket) == []
    assert repo_for(seaweed, s3_bucket, prefix="p").list() == []


def test_wrong_secret_is_one_sentence_without_the_secret(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    wrong = "wrong-" + "z" * 30
    repo = open_repository(
        f"s3://{s3_bucket}/p", environ=seaweed.environ(AWS_SECRET_ACCESS_KEY=wrong)
    )
    for attempt in (repo.list, lambda: repo.create("x").commit()):
        with pytest.raises(RepositoryError) as caught:
            attempt()
        message = str(caught.value)
        assert caught.value.exit_code == 12
        assert wrong not in message and seaweed.secret_key not in message
        assert "\n" not in message
    with pytest.raises(RepositoryError, match="AWS_SECRET_ACCESS_KEY"):
        repo.list()


def test_unknown_access_key_names_the_variable_not_the_key(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    repo = open_repository(
        f"s3://{s3_bucket}", environ=seaweed.environ(AWS_ACCESS_KEY_ID="AKIANOTKNOWN123")
    )
    with pytest.raises(RepositoryError, match="AWS_ACCESS_KEY_ID") as caught:
        repo.list()
    assert "AKIANOTKNOWN123" not in str(caught.value)


def test_missing_bucket_is_named(seaweed: SeaweedS3) -> None:
    repo = open_repository("s3://no-such-bucket-here/p", environ=seaweed.environ())
    with pytest.raises(RepositoryError, match="'no-such-bucket-here' does not exist"):
        repo.list()
    with pytest.raises(RepositoryError, match="does not exist"):
        repo.check()


def test_unreachable_endpoint_is_one_sentence(seaweed: SeaweedS3) -> None:
    from .servers import free_ports

    (port,) = free_ports(1)
    repo = open_repository(
        "s3://bucket/p",
        environ=seaweed.environ(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}"),
        max_attempts=1,
    )
    with pytest.raises(RepositoryError, match=f"Cannot reach the S3 endpoint .*:{port}"):
        repo.list()


def test_missing_credentials_name_the_variables(tmp_path) -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"})
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        repo = open_repository("s3://bucket/p", environ=env)
        with pytest.raises(RepositoryError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
            repo.list()
    finally:
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[k]
        os.environ.update(saved)


def test_repr_and_messages_hold_no_secret(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket)
    shown = repr(repo) + str(repo) + repo.url + repr(vars(repo))
    assert seaweed.secret_key not in shown
    assert seaweed.access_key not in shown


def test_object_lock_sets_retention_and_a_locked_delete_is_refused(
    seaweed: SeaweedS3, s3_lock_bucket: str
) -> None:
    repo = repo_for(seaweed, s3_lock_bucket, part_size=PART)
    upload(repo, "db-20260101T000000Z.mmops", payload(7 * MiB), lock_days=3)  # multipart
    upload(repo, "db-20260102T000000Z.mmops", b"small", lock_days=3)  # single put
    for name in ("db-20260101T000000Z.mmops", "db-20260102T000000Z.mmops"):
        retention = seaweed.client().get_object_retention(
            Bucket=s3_lock_bucket, Key=f"backups/{name}"
        )["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
        left = retention["RetainUntilDate"] - dt.datetime.now(dt.timezone.utc)
        assert dt.timedelta(days=2, hours=23) < left <= dt.timedelta(days=3)
        until = retention["RetainUntilDate"].astimezone(dt.timezone.utc).strftime("%Y-%m-%d")

        with pytest.raises(RepositoryError) as caught:
            repo.delete(name)
        assert caught.value.exit_code == 12
        assert name in str(caught.value) and until in str(caught.value)
        assert name in [e.name for e in repo.list()]  # still there


def test_lock_days_on_the_repository_applies_to_every_create(
    seaweed: SeaweedS3, s3_lock_bucket: str
) -> None:
    repo = repo_for(seaweed, s3_lock_bucket, lock_days=1)
    upload(repo, "a", b"a")
    assert repo.retention("a") is not None
    upload(repo, "b", b"b", lock_days=0)  # this one explicitly unlocked
    assert repo.retention("b") is None


def test_delete_removes_an_unlocked_object_for_good(
    seaweed: SeaweedS3, s3_lock_bucket: str, s3_bucket: str
) -> None:
    for bucket in (s3_bucket, s3_lock_bucket):  # plain, and versioned with Object Lock
        repo = repo_for(seaweed, bucket)
        upload(repo, "db-20260101T000000Z.mmops", b"data")
        repo.delete("db-20260101T000000Z.mmops")
        repo.delete("db-20260101T000000Z.mmops")  # missing: not an error
        assert repo.list() == []
        versions = seaweed.client().list_object_versions(Bucket=bucket)
        assert versions.get("Versions", []) == []


def test_lock_is_exclusive_and_released(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = repo_for(seaweed, s3_bucket)
    with repo.lock():
        with pytest.raises(RepositoryError, match="locked by another mmops .*pid"):
            with repo_for(seaweed, s3_bucket).lock():
                pass
    with repo.lock():  # free again
        pass
    assert repo.list() == []
