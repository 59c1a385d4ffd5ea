"""pg_dump's schema, applied inside the restore's one transaction.

``prepare`` (before the transaction) lists the pg_dump archive's entries per section and has
pg_restore write each section's SQL — the same SQL ``pg_restore`` would send, with its
``--no-owner``/``--no-privileges``/``--clean`` choices. ``apply`` runs a section on the
restore's connection; when PostgreSQL refuses it, the entries are bisected (pg_restore writes
each half, never a text split of ours) to name the object that failed. Large objects' contents
are streamed from pg_restore, a bounded batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from ..errors import ArchiveError, RestoreFailed
from .pg_errors import describe_pg_error
from .pg_script import RolesNamed, roles_named, runnable_script
from .pg_tools import TocEntry, client_bindir, libpq_env, list_entries, restore_sql
from .results import Progress, ProgressCallback

SECTIONS = ("pre-data", "data", "post-data")
_BLOBS = "BLOBS"


@dataclass(frozen=True)
class RestoreOptions:
    no_owner: bool = False
    no_privileges: bool = False
    clean: bool = False
    target_version: int = 999999  # the target's server_version_num


@dataclass
class SchemaScripts:
    """Each section's entries and runnable SQL; ``blobs``: the large objects' data entries."""

    archive: Path
    options: RestoreOptions
    entries: dict[str, list[TocEntry]] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)
    blobs: list[TocEntry] = field(default_factory=list)

    def roles(self) -> RolesNamed:
        named = [roles_named(s) for s in self.scripts.values()]
        return RolesNamed(frozenset().union(*(r.owners for r in named)),
                          frozenset().union(*(r.grantees for r in named)))

    def relations(self) -> int:
        """About how many relations the schema creates (one lock each until commit)."""
        kinds = {"TABLE", "SEQUENCE", "VIEW", "MATERIALIZED VIEW", "INDEX", "CONSTRAINT",
                 "FOREIGN TABLE"}
        return sum(1 for s in SECTIONS for e in self.entries.get(s, []) if e.desc in kinds)

    def large_object_entries(self) -> int:
        return len(self.blobs)


async def prepare(archive: Path, options: RestoreOptions) -> SchemaScripts:
    out = SchemaScripts(archive, options)
    for section in SECTIONS:
        entries = await list_entries(archive, section)
        if section == "data":
            out.blobs = [e for e in entries if e.desc == _BLOBS]
            entries = [e for e in entries if e.desc != _BLOBS]
        out.entries[section] = entries
        out.scripts[section] = await _script(archive, entries, options)
    return out


async def _script(archive: Path, entries: Sequence[TocEntry], options: RestoreOptions) -> str:
    if not entries:
        return ""
    raw = await restore_sql(archive, entries, no_owner=options.no_owner,
                            no_privileges=options.no_privileges, clean=options.clean)
    return runnable_script(raw, options.target_version)


async def apply(conn: asyncpg.Connection, scripts: SchemaScripts, section: str) -> None:
    """Run ``section``'s SQL; on a refusal raise RestoreFailed naming the entry that failed."""
    sql = scripts.scripts.get(section, "")
    if not sql.strip():
        return
    await conn.execute("SAVEPOINT mmops_schema")
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        await conn.execute("ROLLBACK TO SAVEPOINT mmops_schema")
        culprit = await _first_failing(conn, scripts, scripts.entries[section])
        what = culprit.label if culprit is not None else f"the {section} schema"
        raise RestoreFailed(
            f"PostgreSQL refused {what} from the backup's schema: {describe_pg_error(exc)}."
        ) from exc
    await conn.execute("RELEASE SAVEPOINT mmops_schema")


async def _first_failing(
    conn: asyncpg.Connection, scripts: SchemaScripts, entries: list[TocEntry]
) -> TocEntry | None:
    """Bisect ``entries`` (already rolled back) down to the first one PostgreSQL refuses."""
    todo = list(entries)
    while len(todo) > 1:
        half = todo[: len(todo) // 2]
        sql = await _script(scripts.archive, half, scripts.options)
        await conn.execute("SAVEPOINT mmops_bisect")
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError:
            await conn.execute("ROLLBACK TO SAVEPOINT mmops_bisect")
            todo = half
            continue
        await conn.execute("RELEASE SAVEPOINT mmops_bisect")
        todo = todo[len(half):]
    return todo[0] if todo else None


# pg_restore writes a large object's contents as exactly these statements, one per line.
_BLOB_LINE = re.compile(
    r"SELECT pg_catalog\.(lo_open\('\d+', 131072\)|lowrite\(0, '\\x[0-9a-f]*'\)|lo_close\(0\));"
)
_BATCH_BYTES = 4 << 20


async def load_large_objects(
    conn: asyncpg.Connection, scripts: SchemaScripts, emit: ProgressCallback
) -> None:
    """Stream the large objects' contents from pg_restore in bounded batches (a script of
    gigabytes never sits in memory). Only the statements pg_restore writes for them pass."""
    if not scripts.blobs:
        return
    listing = scripts.archive.with_name(scripts.archive.name + ".blobs")
    listing.write_text("".join(e.line + "\n" for e in scripts.blobs), encoding="utf-8")
    listing.chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        str(client_bindir() / "pg_restore"), f"--use-list={listing}", "--file=-",
        str(scripts.archive), env=libpq_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 22,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    batch: list[str] = []
    size = done = 0
    try:
        while line_b := await proc.stdout.readline():
            line = line_b.decode("ascii", "strict").rstrip("\n")
            if _BLOB_LINE.fullmatch(line):
                batch.append(line)
                size += len(line)
                if line.startswith("SELECT pg_catalog.lo_close"):
                    done += 1
                if size >= _BATCH_BYTES:
                    await conn.execute("\n".join(batch))
                    emit(Progress("data", item="large objects", message=f"{done} large objects"))
                    batch, size = [], 0
            elif not _skippable(line):
                raise ArchiveError(
                    "The backup's large object data holds a statement pg_restore does not "
                    "write for large objects; nothing was restored."
                )
        if batch:
            await conn.execute("\n".join(batch))
        await proc.wait()
        stderr = await stderr_task
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise RestoreFailed(f"pg_restore could not read the large objects: {tail[0]}")
    except asyncpg.PostgresError as exc:
        raise RestoreFailed(
            f"PostgreSQL refused a large object's contents: {describe_pg_error(exc)}."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ArchiveError("The backup's large object data is not what pg_restore writes.") \
            from exc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(BaseException):
                await asyncio.shield(proc.wait())
        stderr_task.cancel()
        listing.unlink(missing_ok=True)


_SKIP = re.compile(
    r"(|--.*|BEGIN;|COMMIT;|\\(un)?restrict [A-Za-z0-9]+|SET [a-z_]+ = .*;"
    r"|SELECT pg_catalog\.set_config\('search_path', '', false\);)"
)


def _skippable(line: str) -> bool:
    return bool(_SKIP.fullmatch(line))
