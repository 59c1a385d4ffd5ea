"""Run the sandbox app's alembic migrations against a database.

Alembic renders the upgrade as SQL (offline mode, from the revision the database records to the
target) and asyncpg executes it in one transaction under an advisory lock. The Config is built in
memory: no alembic.ini, no URL anywhere but in this process's memory, nothing secret in argv.
"""

from __future__ import annotations

import io
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from ...dburl import DbUrl, redact_text
from ...errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# The tables the migrations create (besides alembic_version), parents first.
APP_TABLES = ("users", "documents", "custom_dictionaries", "document_recovery")

# pg_advisory_xact_lock key: two migrators on one database run one after the other.
_LOCK_KEY = 0x6D6D6F7073  # "mmops"


def alembic_config(output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def head_revision() -> str:
    """The id of the newest migration."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade_sql(from_revision: str | None, to_revision: str = "head") -> str:
    """The SQL that takes a database from ``from_revision`` (None: empty) to ``to_revision``."""
    buf = io.StringIO()
    rng = f"{from_revision}:{to_revision}" if from_revision else to_revision
    command.upgrade(alembic_config(buf), rng, sql=True)
    return buf.getvalue()


async def _current(conn: asyncpg.Connection) -> str | None:
    if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
        return None
    value = await conn.fetchval("SELECT version_num FROM alembic_version")
    return str(value) if value is not None else None


async def _connect(url: DbUrl) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(**url.connect_kwargs())
    except (OSError, asyncpg.PostgresError) as exc:
        detail = redact_text(str(exc), [url.password])
        raise DatabaseError(f"Cannot connect to {url.redacted()}: {detail}") from exc


async def migrate(url: DbUrl, revision: str = "head") -> str | None:
    """Upgrade the database at ``url`` to ``revision`` in one transaction; returns the revision."""
    target = head_revision() if revision == "head" else revision
    conn = await _connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            current = await _current(conn)
            if current != target:
                await conn.execute(upgrade_sql(current, target))
            return await _current(conn)
    except asyncpg.PostgresError as exc:
        detail = redact_text(str(exc), [url.password])
        raise DatabaseError(
            f"Migrating {url.redacted()} failed (nothing changed): {detail}"
        ) from exc
    finally:
        await conn.close()


async def current_revision(url: DbUrl) -> str | None:
    """The revision recorded in ``alembic_version``, or None before the first migration."""
    conn = await _connect(url)
    try:
        return await _current(conn)
    finally:
        await conn.close()
