"""Plans and outcomes as text: the same words whichever mode produced them."""

from __future__ import annotations

import click

from ..policy.plan import Plan
from ..steps.results import BackupOutcome, RestoreOutcome
from .common import count, human_size


def render_plan(plan: Plan, *, err: bool = False) -> None:
    def echo(text: str) -> None:
        click.echo(text, err=err)

    echo(f"Restore onto {plan.host}, database {plan.database!r} (mode {plan.mode}):")
    echo(f"  backup     {plan.backup_file}")
    if plan.kind.foreign:
        echo(f"  file       {plan.description}")
        echo(f"  alembic    file {plan.backup_alembic_revision or '-'}  /  live "
             f"{plan.live_alembic_revision or '-'}")
        echo(f"  tables     {count(len(plan.tables), 'table')} in the file: "
             f"{count(plan.rows_to_load, 'row')} (live now: "
             f"{count(plan.live_rows_replaced, 'row')})")
    else:
        echo(f"  taken      {plan.backup_created_at} from database {plan.backup_database!r}")
        echo(f"  alembic    backup {plan.backup_alembic_revision or '-'}  /  live "
             f"{plan.live_alembic_revision or '-'}")
        only = f" (--tables {','.join(plan.selected_tables)})" if plan.selected_tables else ""
        if plan.dependents:
            only = only[:-1] + f", and {count(len(plan.dependents), 'table')} referencing them)"
        echo(f"  tables     {count(len(plan.tables), 'table')} replaced{only}: "
             f"{count(plan.live_rows_replaced, 'live row')} → "
             f"{count(plan.rows_to_load, 'row')} from the backup")
    for t in plan.tables[:200]:
        live = "new" if t.live_rows is None else f"{t.live_rows:,}"
        echo(f"    {t.table:<40} {live:>10} → {t.backup_rows:,}")
    if len(plan.tables) > 200:
        echo(f"    … and {count(len(plan.tables) - 200, 'more table')}")
    if plan.dependents:
        echo(f"  dependents {', '.join(plan.dependents)} (--with-dependents: they reference the "
             "selected tables through foreign keys)")
    if plan.dropped:
        echo(f"  drops      {count(len(plan.dropped), 'table')} not in the backup, "
             f"{count(plan.live_rows_dropped, 'live row')}:")
        for d in plan.dropped[:50]:
            echo(f"    will disappear: {d.table} ({count(d.live_rows, 'row')})")
        if len(plan.dropped) > 50:
            echo(f"    … and {len(plan.dropped) - 50:,} more")
    if plan.live_rows_lost:
        echo(f"  loses      {count(plan.live_rows_lost, 'live row')} in all (replaced or "
             "dropped)")
    for w in plan.warnings:
        echo(f"  warning: {w}")
    for r in plan.refusals:
        echo(f"  {'overridden (--force)' if plan.force else 'REFUSED'}: {r}")
    for r in plan.blocked:
        echo(f"  REFUSED: {r}")


def render_backup(outcome: BackupOutcome, *, detailed: bool = False) -> None:
    """The file's path on stdout (scripts read it) and a summary on stderr; ``detailed``: a
    table on stdout (what `make db-backup-ops` shows)."""
    for path in outcome.cleaned:
        click.echo(f"Removed a leftover from an interrupted run: {path}", err=True)
    pub = outcome.published
    if pub is not None:
        where = pub.repository.rstrip("/") + "/" + pub.name
        click.echo(f"stored {where} ({human_size(pub.size_bytes)}"
                   + (", age-encrypted" if pub.encrypted else "") + ")", err=True)
        for name in pub.deleted:
            click.echo(f"pruned {name} (retention)", err=True)
        for why in pub.locked:
            click.echo(f"warning: not pruned: {why}", err=True)
        for why in pub.unverified:
            click.echo(f"warning: left alone: {why}", err=True)
    if detailed:
        click.echo(f"Backup of {outcome.database} on {outcome.host} done.")
        click.echo(f"  file      {outcome.path or '(not kept here: see stored above)'}")
        click.echo(f"  size      {human_size(outcome.size_bytes)}")
        click.echo(f"  tables    {len(outcome.tables):,}")
        click.echo(f"  rows      {outcome.total_rows:,}")
        click.echo(f"  alembic   {outcome.alembic_revision or '-'}")
        click.echo(f"  duration  {outcome.duration_s:.1f}s")
        return
    click.echo(outcome.path or (pub.repository.rstrip("/") + "/" + pub.name if pub else ""))
    click.echo(
        f"backup of {outcome.database} on {outcome.host} (PostgreSQL {outcome.server_version}): "
        f"{human_size(outcome.size_bytes)}, {count(len(outcome.tables), 'table')}, "
        f"{count(outcome.total_rows, 'row')}, alembic {outcome.alembic_revision or '-'}, "
        f"{outcome.duration_s:.1f}s; "
        f"{count(outcome.verified_members, 'member')} verified",
        err=True,
    )


def render_restore(outcome: RestoreOutcome, plan: Plan) -> None:
    click.echo(f"Restored {plan.backup_file} into {outcome.database!r} on {outcome.host} "
               f"({outcome.mode}).")
    if outcome.rows_checked is None:
        click.echo(f"  tables         {count(outcome.tables, 'table')}, "
                   f"{count(outcome.rows_restored, 'row')} restored")
        click.echo(f"  row counts     {outcome.row_check}")
    else:
        extra = "" if outcome.row_check == "ok" else f"; {outcome.row_check}"
        click.echo(f"  tables         {count(outcome.tables, 'table')}, "
                   f"{count(outcome.rows_restored, 'row')}; row counts checked "
                   f"({count(outcome.rows_checked, 'row')}{extra})")
    if outcome.sequences_set:
        click.echo(f"  sequences      {count(outcome.sequences_set, 'sequence')} set past the "
                   "restored ids")
    click.echo(f"  alembic        {outcome.alembic_revision or '-'}")
    click.echo(f"  safety backup  {outcome.safety_backup or 'none (the database had no tables)'}")
    click.echo(f"  duration       {outcome.duration_s:.1f}s")
    for w in outcome.warnings:
        click.echo(f"  warning: {w}")
