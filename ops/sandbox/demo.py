"""The data steps of ``make demo`` against the sandbox: snapshot, a visible change, the check.

The demo's real work (setup, backup, restore) goes through the remote Make targets; these steps
only make the effect visible: count and fingerprint every table, delete documents, compare.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ..errors import OpsError

_TABLES_SQL = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS ident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1
"""


def _snapshot_file() -> Path:
    from ..sandbox import manager

    return manager.default_state_dir().parent / "demo-snapshot.json"


async def _fingerprint(conn: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for row in await conn.fetch(_TABLES_SQL):
        ident = row["ident"]
        count, digest = await conn.fetchrow(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
            f"FROM {ident} t"
        )
        out[ident] = {"rows": int(count), "md5": digest}
    return out


async def _run(step: str) -> str:
    from ..engine.connection import connection
    from ..sandbox import manager

    status = manager.status()
    if not status.running or status.state is None:
        raise OpsError("The sandbox is not running; start it with `make sandbox`.")
    url = manager.database_url(status.state)
    async with connection(url, application_name="mmops demo") as conn:
        if step == "snapshot":
            fp = await _fingerprint(conn)
            _snapshot_file().write_text(json.dumps(fp, indent=2))
            docs = fp.get("public.documents", {}).get("rows")
            return f"demo: recorded {len(fp)} tables ({docs} documents) before the change."
        if step == "change":
            before = await conn.fetchval("SELECT count(*) FROM documents")
            await conn.execute(
                "DELETE FROM documents WHERE id IN "
                "(SELECT id FROM documents ORDER BY id LIMIT (SELECT count(*) / 2 FROM documents))"
            )
            await conn.execute("UPDATE users SET email = 'changed-by-demo-' || email")
            after = await conn.fetchval("SELECT count(*) FROM documents")
            return (f"demo: deleted {before - after} of {before} documents and rewrote every "
                    f"user's email — now {after} documents.")
        want = json.loads(_snapshot_file().read_text())
        got = await _fingerprint(conn)
        differ = sorted(t for t in want if want[t] != got.get(t))
        if differ:
            raise OpsError(f"demo: the data is NOT back; tables differ: {', '.join(differ)}.")
        docs = got.get("public.documents", {}).get("rows")
        return (f"demo: the data is back — all {len(got)} tables equal the snapshot "
                f"({docs} documents).")


def demo_step(step: str) -> str:
    return asyncio.run(_run(step))
