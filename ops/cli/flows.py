"""The backup and restore commands' bodies, shared by ``mmops``, ``mmops remote`` and
``mmops tunnel``: open the transport, call the job, render. No rules here (they are in
``policy``), no workflow (it is in ``jobs``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..jobs.backup import run_backup
from ..jobs.restore import check_backup_exists, confirm, execute, prepare_restore
from ..repository.local import LocalRepository
from ..steps.results import BackupRequest
from ..transport.base import Transport
from .common import echo_json, split_patterns
from .confirm import typed_confirmation
from .progress import progress_reporter
from .render import render_backup, render_plan, render_restore

TransportFactory = Callable[[], contextlib.AbstractContextManager[Transport]]


def backup_command(
    open_transport: TransportFactory, dest: Path, request: BackupRequest, *, as_json: bool,
    progress_json: bool, phases: bool = True, detailed: bool = False,
) -> None:
    repo = LocalRepository(dest)
    with open_transport() as transport, progress_reporter(
        json_lines=progress_json, phases=phases and not as_json
    ) as progress:
        outcome = run_backup(transport, repo, request, progress)
    if as_json:
        echo_json(outcome.to_dict())
    else:
        render_backup(outcome, detailed=detailed)


def restore_spec(backup: str | None, from_database: str | None) -> str:
    """FILE as typed; with --from-database it may be left out (it means `latest`)."""
    if from_database:
        if backup not in (None, "", "latest"):
            raise UsageError(f"--from-database {from_database} restores that database's newest "
                             f"backup; leave out FILE ({backup}) or give `latest`.")
        return "latest"
    if not backup:
        raise UsageError("Which backup? Give FILE (a path, a NAME in the repository or "
                         "`latest`; make: BACKUP=...) or --from-database NAME.")
    return backup


def restore_command(
    open_transport: TransportFactory, backup: str | None, *, backup_dir: Path, mode: str,
    tables: Any, yes: bool, force: bool, lock_timeout: float, keep_safety: int, jobs: int,
    no_owner: bool = False, no_privileges: bool = False,
    as_json: bool, progress_json: bool, phases: bool = True, repo: str | None = None,
    identity: str | None = None, from_database: str | None = None,
    with_dependents: bool = False,
) -> None:
    import tempfile

    from ..repository import open_repository

    backup = restore_spec(backup, from_database)
    source = open_repository(repo) if repo else LocalRepository(backup_dir)
    check_backup_exists(backup, source)  # a typo in FILE fails before SSH or a tunnel opens
    # Downloads and decrypted copies live in a private 0700 dir, removed however we leave.
    with open_transport() as transport, tempfile.TemporaryDirectory(
        prefix="mmops-restore-"
    ) as work:
        # The download and the verify before the plan report progress too (a large backup
        # takes seconds to check); the bar is gone before the plan is shown.
        with progress_reporter(json_lines=progress_json,
                               phases=phases and not as_json) as early:
            prepared = prepare_restore(
                transport, backup, source, workdir=Path(work), identity=identity,
                mode=mode, tables=split_patterns(tables), force=force, no_owner=no_owner,
                no_privileges=no_privileges,
                lock_timeout=lock_timeout, jobs=jobs, keep_safety=keep_safety,
                from_database=from_database, with_dependents=with_dependents, progress=early,
            )
        render_plan(prepared.plan, err=as_json)
        confirm(prepared, lambda plan: typed_confirmation(plan, yes=yes))
        with progress_reporter(json_lines=progress_json,
                               phases=phases and not as_json) as progress:
            outcome = execute(transport, prepared, progress)
    if as_json:
        echo_json({"plan": prepared.plan.to_dict(), **outcome.to_dict()})
    else:
        render_restore(outcome, prepared.plan)
