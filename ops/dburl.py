"""DATABASE_URL in every SQLAlchemy spelling: parsing, the one dotenv reader, redaction.

Parsing goes through ``sqlalchemy.engine.make_url`` (never a regex), so
``postgresql://``, ``postgresql+asyncpg://``, ``postgresql+psycopg://``,
percent-encoded passwords and query options such as ``sslmode`` all work.
"""

from __future__ import annotations

import io
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


_MUST_ENCODE = "@ : / ? # % & ="


def _invalid_url(why: str) -> ConfigError:
    # Never quote the URL or any part of it: a fragment of a password is still a secret.
    return ConfigError(
        f"DATABASE_URL is not a valid URL: {why}.",
        hint="Percent-encode special characters in the user name and password "
        f"({_MUST_ENCODE}), e.g. with python3 -c \"import urllib.parse; "
        "print(urllib.parse.quote(input(), safe=''))\".",
    )


def parse_database_url(raw: str) -> DbUrl:
    """Parse a DATABASE_URL in any SQLAlchemy PostgreSQL spelling.

    Every failure is one ConfigError sentence (exit 3) that never repeats any part of the URL.
    """
    text = raw.strip()
    if not text:
        raise ConfigError("DATABASE_URL is empty.")
    try:
        url: URL = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(
            "DATABASE_URL is not a valid URL (expected postgresql://user:password@host:port/db)."
        ) from exc
    except ValueError:
        # make_url's own message quotes the piece it could not parse (often part of the
        # password), so it is dropped, not chained.
        raise _invalid_url("its host/port part cannot be read (an unencoded special character "
                           "in the password?)") from None
    host = url.host or ""
    if any(c in host for c in "@/?#%:& ") or text.count("@") > 1:
        raise _invalid_url("it holds more than one '@' or a special character in the host part "
                           "(an unencoded character in the password?)")
    if url.password is not None and "%" in str(url.password):
        raise _invalid_url("the password holds a '%' that is not a valid percent-encoding")
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


def database_url_from_dotenv(text: str, *, source: str, key: str = "DATABASE_URL") -> DbUrl:
    """``key`` from the text of a dotenv file (no interpolation, nothing exported), parsed.

    The one reader of env files: local files, the agent's server-side file and the tunnel's
    file read over SSH all end here, so they say the same things. ``source`` names the file in
    messages (e.g. ``"/etc/markdown-manager.env on the server"``).
    """
    from dotenv import dotenv_values

    value = dotenv_values(stream=io.StringIO(text), interpolate=False).get(key)
    if not value:
        raise ConfigError(
            f"The env file {source} does not define {key}.",
            hint=f"Add a line {key}=postgresql://user:password@host:5432/dbname.",
        )
    return parse_database_url(value)


def read_env_file(path: Path) -> DbUrl:
    """DATABASE_URL from a local dotenv file."""
    if not path.exists():
        raise ConfigError(f"The env file {path} does not exist.")
    if path.is_dir():
        raise ConfigError(f"The env file {path} is a directory.")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"The env file {path} is not readable by this user.")
    return database_url_from_dotenv(path.read_text(), source=str(path))


def refused_credentials_hint(env_file: str, host: str) -> str:
    """What to fix when PostgreSQL refuses the user or password of a DATABASE_URL that came
    from ``env_file`` on the server ``host`` (agent and tunnel mode say the same)."""
    return (f"The DATABASE_URL in {env_file} on {host} holds the user and password PostgreSQL "
            "refused: fix them there (mmops reads only that file).")


def resolve_database_url(
    *, database_url: str | None, env_file: Path | None, environ: dict[str, str] | None = None
) -> DbUrl:
    """``--database-url`` beats ``--env-file`` beats ``$DATABASE_URL``."""
    env = os.environ if environ is None else environ
    if database_url:
        return parse_database_url(database_url)
    if env_file is not None:
        return read_env_file(env_file)
    if env.get("DATABASE_URL"):
        return parse_database_url(env["DATABASE_URL"])
    raise ConfigError(
        "No database given: set DATABASE_URL, or pass --env-file PATH or --database-url URL."
    )


def private_file_mode_ok(path: Path) -> bool:
    """True when a file is readable by its owner only (0600 or stricter)."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def redact_text(text: str, secrets: list[str | None]) -> str:
    """Replace secrets in a third-party driver's message with ``***``.

    A last line of defence for text we did not build (driver exceptions) only: never run it
    over our own messages or a protocol (a short password would rewrite unrelated text).
    Passwords of 4 characters or fewer are left alone for that reason; such messages are
    built without the URL in the first place.
    """
    for secret in secrets:
        if secret and len(secret) > 4:
            text = text.replace(secret, "***")
    return text
