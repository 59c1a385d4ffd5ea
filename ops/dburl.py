"""DATABASE_URL in every SQLAlchemy spelling: parsing, env files, redaction.

Parsing goes through ``sqlalchemy.engine.make_url`` (never a regex), so
``postgresql://``, ``postgresql+asyncpg://``, ``postgresql+psycopg://``,
percent-encoded passwords and query options such as ``sslmode`` all work.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError

# libpq query options that map onto asyncpg.connect() keyword arguments.
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


@dataclass(frozen=True)
class DbUrl:
    """A parsed database URL. ``repr``/``str`` never show the password."""

    host: str | None
    port: int | None
    database: str
    username: str | None
    password: str | None = field(repr=False)
    query: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.redacted()

    def redacted(self) -> str:
        """``user@host:port/db`` — safe for logs, progress and manifests."""
        user = f"{self.username}@" if self.username else ""
        host = self.host or "localhost"
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}/{self.database}"

    def with_host_port(self, host: str, port: int) -> DbUrl:
        """The same database reached at another address (used by the SSH tunnel)."""
        return DbUrl(host, port, self.database, self.username, self.password, dict(self.query))

    def with_database(self, database: str) -> DbUrl:
        return DbUrl(self.host, self.port, database, self.username, self.password, dict(self.query))

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect``; the password is passed in memory only."""
        kwargs: dict[str, Any] = {"database": self.database}
        if self.host:
            if self.host.startswith("/"):
                kwargs["host"] = self.host
            else:
                kwargs["host"] = self.host
        elif "host" in self.query:
            kwargs["host"] = self.query["host"]
        if self.port:
            kwargs["port"] = self.port
        if self.username:
            kwargs["user"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        sslmode = self.query.get("sslmode") or self.query.get("ssl")
        if sslmode:
            if sslmode not in _SSL_MODES and sslmode not in {"true", "false"}:
                raise ConfigError(f"DATABASE_URL has an unknown sslmode {sslmode!r}.")
            kwargs["ssl"] = {"true": "require", "false": "disable"}.get(sslmode, sslmode)
        if "application_name" in self.query:
            kwargs.setdefault("server_settings", {})["application_name"] = self.query[
                "application_name"
            ]
        return kwargs

    def to_libpq_env(self) -> dict[str, str]:
        """PG* environment variables for libpq tools (psql, pg_dump) — secrets via env, not argv."""
        env = {"PGDATABASE": self.database}
        host = self.host or self.query.get("host")
        if host:
            env["PGHOST"] = host
        if self.port:
            env["PGPORT"] = str(self.port)
        if self.username:
            env["PGUSER"] = self.username
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        if "sslmode" in self.query:
            env["PGSSLMODE"] = self.query["sslmode"]
        return env


def parse_database_url(raw: str) -> DbUrl:
    """Parse a DATABASE_URL in any SQLAlchemy PostgreSQL spelling."""
    text = raw.strip()
    if not text:
        raise ConfigError("DATABASE_URL is empty.")
    try:
        url: URL = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(
            "DATABASE_URL is not a valid URL (expected postgresql://user:password@host:port/db)."
        ) from exc
    backend = url.get_backend_name()
    if backend not in {"postgresql", "postgres"}:
        raise ConfigError(f"DATABASE_URL is for {backend!r}, not PostgreSQL.")
    if not url.database:
        raise ConfigError("DATABASE_URL names no database (add /dbname at the end).")
    query = {k: (v if isinstance(v, str) else v[-1]) for k, v in url.query.items()}
    return DbUrl(
        host=url.host or query.get("host"),
        port=url.port or (int(query["port"]) if query.get("port", "").isdigit() else None),
        database=url.database,
        username=url.username,
        password=url.password if url.password is None else str(url.password),
        query=query,
    )


def read_env_file(path: Path, key: str = "DATABASE_URL") -> str:
    """Read ``key`` from a dotenv file without exporting anything to the environment."""
    from dotenv import dotenv_values

    if not path.exists():
        raise ConfigError(f"Env file {path} does not exist.")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"Env file {path} is not readable by this user.")
    values = dotenv_values(path, interpolate=False)
    value = values.get(key)
    if not value:
        raise ConfigError(f"Env file {path} does not define {key}.")
    return value


def resolve_database_url(
    *, database_url: str | None, env_file: Path | None, environ: dict[str, str] | None = None
) -> DbUrl:
    """``--database-url`` beats ``--env-file`` beats ``$DATABASE_URL``."""
    env = os.environ if environ is None else environ
    if database_url:
        return parse_database_url(database_url)
    if env_file is not None:
        return parse_database_url(read_env_file(env_file))
    if env.get("DATABASE_URL"):
        return parse_database_url(env["DATABASE_URL"])
    raise ConfigError(
        "No database given: set DATABASE_URL, or pass --env-file PATH or --database-url URL."
    )


def redact_text(text: str, secrets: list[str | None]) -> str:
    """Replace every secret in ``text`` with ``***`` (for error messages from drivers)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def private_file_mode_ok(path: Path) -> bool:
    """True when a file is readable by its owner only (0600 or stricter)."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
