"""Pure decisions about a restore: may it run, in which order are tables loaded.

Plain functions over plain data (no I/O), unit-tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ..errors import RestoreRefused
from .results import RestoreMode
from .target import LockCapacity, TargetState

Table = tuple[str, str]


def _q(t: Table) -> str:
    return f"{t[0]}.{t[1]}"


def check_restore_allowed(
    *,
    mode: RestoreMode,
    target: TargetState,
    backup_tables: Mapping[Table, Sequence[str]],
    backup_revision: str | None,
    force: bool,
    selected: Sequence[Table] | None,
) -> list[str]:
    """Raise RestoreRefused when the restore must not start; return warnings otherwise."""
    warnings: list[str] = []
    if selected is not None and mode is not RestoreMode.DATA_ONLY:
        raise RestoreRefused(
            "Restoring selected tables only works with --mode data-only (into the existing "
            "schema); without --tables the whole backup is restored."
        )
    if mode is RestoreMode.CREATE and target.user_relations:
        raise RestoreRefused(
            f"Database {target.database!r} is not empty ({target.user_relations} tables, views "
            "or sequences); use --mode replace to make it equal to the backup or --mode "
            "data-only to load the data into its existing schema."
        )
    if mode is RestoreMode.DATA_ONLY:
        tables = list(selected if selected is not None else backup_tables)
        missing = [t for t in tables if t not in target.table_columns]
        if missing:
            raise RestoreRefused(
                f"Database {target.database!r} has no table {', '.join(map(_q, missing[:5]))}"
                "; data-only restores need the schema to exist (run the app's migrations, or use "
                "--mode replace)."
            )
        for t in tables:
            ours, theirs = list(backup_tables[t]), list(target.table_columns[t])
            lacking = [c for c in ours if c not in theirs]
            if lacking:
                raise RestoreRefused(
                    f"Table {_q(t)} in the database lacks column(s) {', '.join(lacking)} that the "
                    "backup holds; the schemas differ (migrate the database to the backup's "
                    "revision first)."
                )
            extra = [c for c in theirs if c not in ours]
            if extra and not force:
                raise RestoreRefused(
                    f"Table {_q(t)} in the database has column(s) {', '.join(extra)} that the "
                    "backup lacks; the schemas differ (use --force to load anyway)."
                )
            if extra:
                warnings.append(f"{_q(t)}: column(s) {', '.join(extra)} left at their defaults")
        if backup_revision != target.alembic_revision:
            msg = (
                f"alembic revision differs: backup {backup_revision or 'none'}, database "
                f"{target.alembic_revision or 'none'}"
            )
            if not force:
                raise RestoreRefused(
                    f"The {msg}; migrate the database to the backup's revision or use --force."
                )
            warnings.append(msg)
        chosen = set(tables)
        blockers = sorted(
            {
                (ref, t)
                for t in tables
                for ref in target.referenced_by.get(t, ())
                if ref not in chosen
            }
        )
        if blockers:
            ref, t = blockers[0]
            raise RestoreRefused(
                f"Table {_q(ref)} references {_q(t)} through a foreign key but is not being "
                "restored; add it to --tables or pass --with-dependents (or restore without "
                "--tables)."
            )
    return warnings


def load_order(tables: Iterable[Table], references: Mapping[Table, Iterable[Table]]) -> list[Table]:
    """Topological order so referenced tables load before referencing ones.

    Cycles (and self-references) cannot be ordered; their members keep their input order and
    rely on deferrable constraints.
    """
    todo = list(dict.fromkeys(tables))
    chosen = set(todo)
    deps = {t: {r for r in references.get(t, ()) if r in chosen and r != t} for t in todo}
    ordered: list[Table] = []
    placed: set[Table] = set()
    while todo:
        ready = [t for t in todo if deps[t] <= placed]
        if not ready:  # a cycle: break it at the first remaining table
            ready = [todo[0]]
        for t in ready:
            ordered.append(t)
            placed.add(t)
        todo = [t for t in todo if t not in placed]
    return ordered


_CREATES_RELATION = re.compile(
    r"^CREATE (?:UNLOGGED )?(?:TABLE|SEQUENCE|VIEW|MATERIALIZED VIEW|(?:UNIQUE )?INDEX) "
)
_CREATES_INDEX = re.compile(r"^ALTER TABLE .* ADD CONSTRAINT .* (?:PRIMARY KEY|UNIQUE|EXCLUDE)\b")


def relations_created(
    pre_data: Sequence[str], post_data: Sequence[str], tables_with_rows: int
) -> int:
    """About how many relations a restore of this schema creates (each one lock until commit):
    tables, sequences (identity ones too), views, indexes, index-backed constraints, and a TOAST
    table plus its index for each table that holds rows."""
    count = 0
    for stmt in (*pre_data, *post_data):
        if _CREATES_RELATION.match(stmt) or _CREATES_INDEX.match(stmt):
            count += 1
        count += stmt.count("AS IDENTITY (SEQUENCE NAME ")
    return count + 2 * tables_with_rows


def check_lock_capacity(*, needed: int, capacity: LockCapacity, database: str) -> None:
    """Refuse, before anything changes, a restore whose one transaction would need more locks
    than the server's shared lock table documents (it would fail with "out of shared memory")."""
    if needed <= capacity.total:
        return
    suggest = -(-needed // (capacity.max_connections + capacity.max_prepared_transactions))
    suggest = max(suggest + suggest // 4, capacity.max_locks_per_transaction * 2)
    raise RestoreRefused(
        f"Restoring into {database!r} in one transaction needs about {needed} locks (one per "
        f"table, index, sequence and TOAST table), but the server's lock table holds "
        f"{capacity.total} (max_locks_per_transaction {capacity.max_locks_per_transaction} × "
        f"(max_connections {capacity.max_connections} + max_prepared_transactions "
        f"{capacity.max_prepared_transactions})); nothing was changed.",
        hint=f"Raise max_locks_per_transaction to at least {suggest} in postgresql.conf "
        "(ALTER SYSTEM SET max_locks_per_transaction = …) and restart PostgreSQL, then retry.",
    )
