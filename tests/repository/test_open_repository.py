"""open_repository: which store a REPO spec names, and what it refuses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ops.errors import UsageError
from ops.repository import open_repository
from ops.repository.gcs import GCSRepository
from ops.repository.parts import MIN_PART_SIZE, MiB, choose_part_size
from ops.repository.s3 import S3Repository

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "very-secret-value",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}


def test_s3_url_gives_an_s3_repository_with_bucket_and_prefix() -> None:
    repo = open_repository("s3://my-bucket/team/backups/", environ=S3_ENV)
    assert isinstance(repo, S3Repository)
    assert (repo.bucket, repo.prefix, repo.url) == (
        "my-bucket", "team/backups", "s3://my-bucket/team/backups"
    )
    assert repo.key("x.mmops") == "team/backups/x.mmops"
    assert "very-secret-value" not in repr(repo) and "AKIAEXAMPLE" not in repr(repo)


def test_s3_endpoint_specific_variable_wins_over_the_generic_one() -> None:
    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:10"}
    repo = open_repository("s3://b", environ=env)
    assert isinstance(repo, S3Repository)
    assert repo.endpoint == "http://127.0.0.1:10"


def test_endpoint_user_info_is_never_displayed() -> None:
    env = {**S3_ENV, "AWS_ENDPOINT_URL": "http://user:pw-in-url@127.0.0.1:9"}
    repo = open_repository("s3://b", environ=env)
    assert "pw-in-url" not in repr(repo)


def test_gs_url_with_the_emulator_gives_a_gcs_repository() -> None:
    repo = open_repository("gs://bkt/p", environ={"STORAGE_EMULATOR_HOST": "127.0.0.1:9"})
    assert isinstance(repo, GCSRepository)
    assert repo.url == "gs://bkt/p" and repo.endpoint == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "spec",
    ["s3://key:secret@bucket/p", "s3:///p", "gs://Bad_Bucket/p", "s3://b/p?x=1", "ftp://host/x"],
)
def test_bad_repository_urls_are_usage_errors_without_their_userinfo(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_repository(spec, environ=S3_ENV)
    assert caught.value.exit_code == 2
    assert "secret" not in str(caught.value)


def test_a_plain_path_gives_the_local_repository(tmp_path: Path) -> None:
    if importlib.util.find_spec("ops.repository.local") is None:
        pytest.skip("ops/repository/local.py (LocalRepository) is not written yet")
    from ops.repository.local import LocalRepository

    assert isinstance(open_repository(str(tmp_path)), LocalRepository)


def test_part_size_fits_a_terabyte_into_a_thousand_equal_parts() -> None:
    size = choose_part_size()  # nothing known: up to 1 TB
    assert size % MiB == 0
    assert -(-(10**12) // size) <= 1000
    assert choose_part_size(10**12 - 1) == size


def test_part_size_never_drops_below_8_mib_and_follows_the_hint() -> None:
    assert choose_part_size(1) == MIN_PART_SIZE
    assert choose_part_size(8 * 1000 * MiB) == MIN_PART_SIZE
    hint = 50 * 10**9
    size = choose_part_size(hint)
    assert size > MIN_PART_SIZE and -(-hint // size) <= 1000 and size % MiB == 0
