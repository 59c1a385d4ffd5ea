"""``mmops verify --restore-test``: fetch the backup, call the test-restore job, render its
report. Exit 0 only when every table, sequence and the alembic revision match."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from ..errors import RestoreFailed
from .common import count, echo_json
from .progress import progress_reporter


def restore_test_command(
    spec: str, *, repo: str | None, database: str | None, identity: str | None,
    scratch_url: str | None, as_json: bool,
) -> None:
    from .. import aio
    from ..dburl import parse_database_url
    from ..jobs.test_restore import fetch_for_restore_test, run_restore_test

    scratch = parse_database_url(scratch_url) if scratch_url else None
    workdir = Path(tempfile.mkdtemp(prefix="mmops-restore-test-"))  # 0700, unpredictable
    try:
        file = fetch_for_restore_test(spec, repo, database=database, identity=identity,
                                      workdir=workdir)
        with progress_reporter(phases=not as_json) as progress:
            report = aio.run(lambda: run_restore_test(file, scratch_url=scratch,
                                                      progress=progress))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        echo_json(report.to_dict())
    else:
        _render(report, Path(spec).name if repo is None else f"{spec} in {repo}")
    if not report.ok:
        problems = report.problems
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise RestoreFailed(
            "The test restore FAILED: " + "; ".join(problems[:5]) + more
            + ". The backup does not restore to the data it recorded; take a new backup and "
            "investigate this one."
        )


def _render(report: object, label: str) -> None:
    from ..jobs.test_restore import RestoreTestReport

    assert isinstance(report, RestoreTestReport)
    verdict = "OK" if report.ok else "FAILED"
    click.echo(f"Test restore {verdict}: {label}")
    click.echo(f"  backup    {report.database} from PostgreSQL {report.server_version}, alembic "
               f"{report.alembic_expected or '-'}")
    click.echo(f"  into      {report.target}")
    ok_tables = sum(c.ok for c in report.tables)
    click.echo(f"  tables    {ok_tables}/{len(report.tables)} identical (rows and sha256 of the "
               f"COPY data), {count(report.rows, 'row')}")
    for c in report.tables:
        mark = "ok  " if c.ok else "FAIL"
        rows = "-" if c.rows_found is None else count(c.rows_found, "row")
        click.echo(f"    [{mark}] {c.qualified:<44} {rows:>15}  "
                   f"sha256 {(c.sha256_found or '-')[:16]}")
    ok_seqs = sum(s.ok for s in report.sequences)
    click.echo(f"  sequences {ok_seqs}/{len(report.sequences)} at the backup's values")
    for s in report.sequences:
        if not s.ok:
            click.echo(f"    [FAIL] {s.problem()}")
    alembic_ok = report.alembic_found == report.alembic_expected
    click.echo(f"  alembic   {report.alembic_found or '-'} "
               f"({'matches' if alembic_ok else 'DIFFERS from ' + str(report.alembic_expected)})")
    for note in report.notes:
        click.echo(f"  note      {note}")
    click.echo(f"  took      {report.duration_s:.1f}s")
