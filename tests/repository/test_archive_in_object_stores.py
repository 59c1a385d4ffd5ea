"""A backup file streamed straight into S3 / GCS and read, verified, from there."""

from __future__ import annotations

import pytest

from ops.archive import ArchiveReader, ArchiveWriter, read_manifest, verify_archive
from ops.errors import ArchiveError
from ops.repository import open_repository
from ops.repository.parts import MiB
from tests.conftest import require

from .servers import FakeGcs, SeaweedS3
from .test_s3 import payload

pytestmark = pytest.mark.storage

NAME = "db-20260101T000000Z.mmops"
MEMBERS = {
    "schema/pre-data": ("schema", b"CREATE TABLE t (id int);\n"),
    "data/public.t": ("table-data", payload(9 * MiB, seed=11)),  # incompressible: > 1 part
    "schema/post-data": ("schema", b""),
}


def write_backup(repo) -> None:
    with ArchiveWriter.to_sink(repo.create(NAME), chunk_size=1 * MiB) as writer:
        for member, (kind, data) in MEMBERS.items():
            with writer.open_member(member, kind) as m:
                for start in range(0, len(data), 300_000):
                    m.write(data[start : start + 300_000])
        writer.commit({"database": "db"})


def check_backup(repo) -> None:
    source = repo.open(NAME)
    assert read_manifest(source)["database"] == "db"
    assert verify_archive(source).ok
    with ArchiveReader(source) as reader:
        for member, (_kind, data) in MEMBERS.items():
            assert reader.read_member(member) == data


def test_backup_streams_into_s3_and_verifies_from_there(
    seaweed: SeaweedS3, s3_bucket: str
) -> None:
    repo = open_repository(f"s3://{s3_bucket}/b", environ=seaweed.environ(), part_size=5 * MiB)
    write_backup(repo)
    check_backup(repo)


def test_backup_streams_into_gcs_and_verifies_from_there(
    fake_gcs: FakeGcs, gcs_bucket: str
) -> None:
    repo = open_repository(f"gs://{gcs_bucket}/b", environ=fake_gcs.environ())
    write_backup(repo)
    check_backup(repo)


def test_failed_backup_leaves_nothing_in_s3(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = open_repository(f"s3://{s3_bucket}/b", environ=seaweed.environ(), part_size=5 * MiB)
    with pytest.raises(RuntimeError):
        with ArchiveWriter.to_sink(repo.create(NAME), chunk_size=1 * MiB) as writer:
            writer.add_member("data/public.t", "table-data", payload(12 * MiB))
            raise RuntimeError("the database went away")
    assert repo.list() == []
    assert seaweed.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_flipped_byte_in_a_stored_object_is_refused(seaweed: SeaweedS3, s3_bucket: str) -> None:
    repo = open_repository(f"s3://{s3_bucket}/b", environ=seaweed.environ(), part_size=5 * MiB)
    write_backup(repo)
    client = seaweed.client()
    body = bytearray(client.get_object(Bucket=s3_bucket, Key=f"b/{NAME}")["Body"].read())
    with ArchiveReader(repo.open(NAME)) as reader:
        offset, _ = reader.member("data/public.t").chunks[3]
    body[offset + 10] ^= 0x01
    client.delete_object(Bucket=s3_bucket, Key=f"b/{NAME}")
    client.put_object(Bucket=s3_bucket, Key=f"b/{NAME}", Body=bytes(body))
    with pytest.raises(ArchiveError, match=f"s3://{s3_bucket}/b/{NAME} is corrupt"):
        verify_archive(repo.open(NAME))


def test_encrypted_backup_in_s3_decrypts_with_our_helper_and_stock_age(
    seaweed: SeaweedS3, s3_bucket: str, tmp_path
) -> None:
    import shutil
    import subprocess

    from ops.crypto import (
        EncryptingSink,
        decrypt_to_file,
        generate_identity,
        load_identities,
        parse_recipients,
    )

    key = tmp_path / "key.txt"
    recipients = parse_recipients(generate_identity(key))
    repo = open_repository(f"s3://{s3_bucket}/b", environ=seaweed.environ(), part_size=5 * MiB)
    sink = EncryptingSink(repo.create(NAME + ".age"), recipients)
    with ArchiveWriter.to_sink(sink, name=NAME + ".age", chunk_size=1 * MiB) as writer:
        for member, (kind, data) in MEMBERS.items():
            writer.add_member(member, kind, data)
        writer.commit({"database": "db"})
    assert [e.name for e in repo.list()] == [NAME + ".age"]

    plain = decrypt_to_file(repo.open(NAME + ".age"), tmp_path / NAME, load_identities(key))
    assert verify_archive(plain).ok
    require(shutil.which("age") is not None, "the age CLI (apt-get install age)")
    blob = tmp_path / "downloaded.age"  # stock age opens what we stored
    blob.write_bytes(seaweed.client().get_object(Bucket=s3_bucket, Key=f"b/{NAME}.age")
                     ["Body"].read())
    out = subprocess.run(["age", "-d", "-i", str(key), str(blob)], capture_output=True,
                         check=True).stdout
    assert out == plain.read_bytes()
