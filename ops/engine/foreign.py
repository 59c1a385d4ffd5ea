"""Restores of files we did not write: the old scripts' JSON backups and plain SQL dumps.

Both run in ONE transaction on one connection, like our own restore.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from ..dburl import DbUrl
from ..errors import ArchiveError, OpsError, RestoreFailed, RestoreRefused
from .connection import connection
from .results import ProgressCallback

ForeignRestore = Callable[..., Awaitable[dict[str, Any]]]


def restorer_for(path: Path) -> ForeignRestore | None:
    """The restore function for ``path`` if it is an old JSON backup or a SQL dump, else None."""
    from .legacy_json import looks_like_legacy_json
    from .sql_script import looks_like_sql_script

    if looks_like_legacy_json(path):
        return restore_legacy_file
    if looks_like_sql_script(path):
        return restore_sql_file
    return None


async def _in_one_transaction(
    url: DbUrl,
    lock_timeout: float,
    what: str,
    body: Callable[[asyncpg.Connection], Awaitable[Any]],
) -> dict[str, Any]:
    async with connection(url, application_name="mmops restore") as conn:
        try:
            async with conn.transaction():
                await conn.execute(
                    f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms';"
                    "SET LOCAL statement_timeout = 0"
                )
                result = await body(conn)
        except (RestoreRefused, RestoreFailed, ArchiveError):
            # ArchiveError keeps its own exit code: the file is damaged, nothing changed.
            raise
        except OpsError as exc:
            raise RestoreFailed(
                f"{exc} The restore was rolled back; database {url.database!r} is unchanged."
            ) from exc
        except asyncpg.PostgresError as exc:
            raise RestoreFailed(
                f"PostgreSQL refused {what} ({str(exc).splitlines()[0]}); the restore was rolled "
                f"back and database {url.database!r} is unchanged."
            ) from exc
    if hasattr(result, "to_dict"):
        return dict(result.to_dict())
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return dict(result)


async def restore_legacy_file(
    url: DbUrl,
    path: Path,
    *,
    lock_timeout: float = 30.0,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    from .legacy_json import restore_legacy_json

    async def body(conn: asyncpg.Connection) -> Any:
        return await restore_legacy_json(conn, path, force=force, progress=progress)

    return await _in_one_transaction(url, lock_timeout, f"the JSON backup {path.name}", body)


async def restore_sql_file(
    url: DbUrl,
    path: Path,
    *,
    lock_timeout: float = 30.0,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    from .sql_script import restore_sql_script

    async def body(conn: asyncpg.Connection) -> Any:
        return await restore_sql_script(conn, path, progress=progress)

    return await _in_one_transaction(url, lock_timeout, f"the SQL script {path.name}", body)
