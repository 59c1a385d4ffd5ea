"""A REPO / --repo value that does not parse cleanly into ONE repository is refused with one
sentence — never read as a strange directory or key prefix (issue 18: `REPO="s3://a/x gs://b/y
/srv/bk"` used to land under the key `x gs:/b/y /srv/bk/…` with exit 0). Through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.errors import UsageError
from ops.repository import check_repository_spec, open_repository
from tests.jobs.test_repository_workflow import run

BAD = {
    "several": "s3://a/x gs://b/y /srv/bk",
    "space in a prefix": "s3://bucket/my backups",
    "space in a directory": "/srv/my backups",
    "tab": "gs://bucket/p\tq",
    "empty bucket": "s3:///prefix",
    "dot-dot segment": "s3://bucket/a/../b",
    "dot segment": "gs://bucket/./b",
    "empty segment": "s3://bucket/a//b",
    "query": "s3://bucket/p?versionId=1",
    "empty query": "gs://bucket/p?",
    "fragment": "s3://bucket/p#x",
    "unknown scheme": "ftp://host/x",
    "file scheme": "file:///srv/bk",
    "one slash": "s3:/bucket/p",
}


@pytest.mark.parametrize("spec", list(BAD.values()), ids=list(BAD))
def test_a_repository_url_that_does_not_parse_cleanly_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_repository_spec(spec)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError):
        open_repository(spec, environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})


@pytest.mark.parametrize("spec,kind", [("s3://bucket/team/backups/", "s3"), ("gs://bkt", "gs"),
                                       ("S3://bucket/p", "s3"), ("/srv/backups", "dir"),
                                       ("../backups", "dir"), ("backups", "dir")])
def test_clean_repository_specs_still_pass(spec: str, kind: str) -> None:
    assert check_repository_spec(spec) == kind


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("spec", [BAD["several"], BAD["dot-dot segment"], BAD["query"],
                                  BAD["unknown scheme"], BAD["empty bucket"]])
def test_repo_list_and_prune_refuse_a_bad_repository_with_exit_2(spec: str) -> None:
    res = run("repo", "--repo", spec, "list")
    assert res.returncode == 2, res.stdout + res.stderr
    assert _one_sentence(res.stderr).startswith("error: ")
    res = run("repo", "prune", "--repo", spec, "--database", "db", "--keep-last", "1")
    assert res.returncode == 2, res.stdout + res.stderr
    _one_sentence(res.stderr)


def test_backup_refuses_several_repositories_in_one_value_before_it_starts(
    tmp_path: Path,
) -> None:
    """The refusal comes before any connection (the database URL points nowhere) and nothing
    is written: no directory named after a piece of the value."""
    res = run("backup", "-o", str(tmp_path / "out"), "--repo", f"{tmp_path}/a {tmp_path}/b",
              env={"DATABASE_URL": "postgresql://u@127.0.0.1:9/db"})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "whitespace" in _one_sentence(res.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_repo_list_refuses_the_env_var_holding_several_repositories() -> None:
    res = run("repo", "list", env={"REPO": BAD["several"]})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "one REPO names one repository" in _one_sentence(res.stderr)


@pytest.mark.parametrize("command", [["check"], ["repo", "check"]])
def test_the_nagios_checks_report_a_bad_repository_as_unknown(command: list[str]) -> None:
    """Monitoring reads exit 2 as CRITICAL: a bad REPO is UNKNOWN (3) there, same sentence."""
    res = run(*command, "--repo", BAD["several"])
    assert res.returncode == 3, res.stdout + res.stderr
    assert "UNKNOWN" in res.stdout and "one REPO names one repository" in res.stdout
    assert "Traceback" not in res.stderr
