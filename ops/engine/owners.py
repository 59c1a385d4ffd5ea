"""Can the restoring user give the backup's objects their owners and grants? Asked before the
restore's transaction starts, so a missing role is a refusal that names it — not an error half
way through a restore (pg_restore would stop there too, or leave the objects to whoever ran it)."""

from __future__ import annotations

import asyncpg

from ..errors import RestoreRefused
from .schema_apply import SchemaScripts


def _names(roles: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(roles))


async def check_roles(conn: asyncpg.Connection, scripts: SchemaScripts) -> list[str]:
    """Raise RestoreRefused when owners or grants cannot be restored as the options stand;
    return the plan's notes about what is left out on purpose."""
    notes: list[str] = []
    opts = scripts.options
    if opts.no_owner:
        notes.append("objects will be owned by the restoring user (--no-owner)")
    if opts.no_privileges:
        notes.append("the backup's GRANTs are not restored (--no-privileges)")
    named = scripts.roles()
    wanted = set(named.owners) | set(named.grantees)
    if not wanted:
        return notes
    version = int(await conn.fetchval("SELECT current_setting('server_version_num')::int"))
    # From PostgreSQL 16 on, ALTER … OWNER TO needs the SET option on the new owner.
    how = "SET" if version >= 160000 else "MEMBER"
    rows = await conn.fetch(
        f"""SELECT r.rolname,
                   pg_catalog.pg_has_role(current_user, r.oid, '{how}') AS can_act
            FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1::text[])""",
        sorted(wanted),
    )
    existing = {r["rolname"]: bool(r["can_act"]) for r in rows}
    superuser = bool(await conn.fetchval(
        "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"))
    user = str(await conn.fetchval("SELECT current_user"))
    missing_owners = {r for r in named.owners if r not in existing}
    foreign_owners = {r for r in named.owners
                      if r in existing and not superuser and not existing[r]}
    missing_grantees = {r for r in named.grantees if r not in existing}
    problems = []
    if (missing_owners or foreign_owners) and not opts.no_owner:
        if missing_owners:
            problems.append(f"the backup's objects are owned by role(s) {_names(missing_owners)}, "
                            "which do not exist on the target")
        if foreign_owners:
            problems.append(f"user {user} cannot make role(s) {_names(foreign_owners)} owners "
                            "(it is neither a superuser nor a member of them)")
    if missing_grantees and not opts.no_privileges:
        problems.append(f"the backup grants privileges to role(s) {_names(missing_grantees)}, "
                        "which do not exist on the target")
    if problems:
        fixes = []
        if (missing_owners or foreign_owners) and not opts.no_owner:
            fixes.append("--no-owner (NO_OWNER=1)")
        if missing_grantees and not opts.no_privileges:
            fixes.append("--no-privileges (NO_PRIVILEGES=1)")
        raise RestoreRefused(
            "Owners and grants cannot be restored as they were: " + "; ".join(problems)
            + "; nothing was changed.",
            hint=f"Create the roles first (CREATE ROLE …), or restore with {' and '.join(fixes)}.",
        )
    # With --no-owner the scripts name no owners at all, so any owner problem was raised above.
    return notes
