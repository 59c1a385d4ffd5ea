"""One CLI grammar: every option documented (with its environment variable), group options
accepted where users type them, --json on every reporting command — checked on the real click
command tree and through the console script."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ops.cli import main

MMOPS = str(Path(sys.executable).parent / "mmops")
ROOT = Path(__file__).resolve().parents[2]


def _walk(cmd: click.Command, path: tuple[str, ...] = ("mmops",)
          ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


def _options() -> Iterator[tuple[str, click.Option]]:
    for path, cmd in _walk(main):
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and p.name not in {"help",
                                                                                "version"}:
                yield f"{' '.join(path)} {p.opts[0]}", p


def test_every_option_has_help_text() -> None:
    missing = [where for where, p in _options() if not (p.help or "").strip()]
    assert missing == []


def test_every_option_with_an_environment_variable_shows_it_in_help() -> None:
    hidden = [where for where, p in _options() if p.envvar and not p.show_envvar]
    assert hidden == []
    res = CliRunner().invoke(main, ["remote", "backup", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())  # help wraps lines
    assert "[env var: HOST]" in text and "[env var: ENCRYPT_TO]" in text


def test_every_environment_variable_of_the_cli_is_a_variable_make_knows() -> None:
    """make stops on variables it does not know (the typo check): every env var an option
    reads must be among them, or setting it for make would be refused."""
    known = set(subprocess.run(["make", "-s", "--no-print-directory", "-C", str(ROOT),
                                "known-vars"], capture_output=True, text=True,
                               check=True).stdout.split())
    envvars = set()
    for _where, p in _options():
        envvars.update([p.envvar] if isinstance(p.envvar, str) else (p.envvar or []))
    for _path, cmd in _walk(main):
        for p in cmd.params:
            if isinstance(p, click.Argument) and p.envvar:
                envvars.add(str(p.envvar))
    assert envvars - known == set()


REPORTING = [
    ("repo", "list"), ("repo", "prune"), ("check",), ("backup",), ("restore",), ("verify",),
    ("inspect",), ("export",), ("remote", "setup"), ("remote", "backup"), ("remote", "restore"),
    ("remote", "status"), ("remote", "doctor"), ("tunnel", "backup"), ("tunnel", "restore"),
    ("schedule", "install"), ("schedule", "status"), ("schedule", "remove"),
    ("schedule", "test-notify"), ("notify", "test"), ("sandbox", "start"),
    ("sandbox", "status"), ("fleet", "backup"),
]


@pytest.mark.parametrize("path", REPORTING, ids=" ".join)
def test_every_reporting_command_has_json(path: tuple[str, ...]) -> None:
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    assert "--json" in [o for p in cmd.params for o in p.opts]


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_repo_option_works_before_and_after_the_subcommand(tmp_path: Path, before: bool
                                                           ) -> None:
    (tmp_path / "db-20260101T000000Z.mmops").write_bytes(b"x")
    where = ["--repo", str(tmp_path)]
    argv = ["repo", *where, "prune"] if before else ["repo", "prune", *where]
    res = subprocess.run([MMOPS, *argv, "--database", "db", "--keep-last", "1", "--dry-run",
                          "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert '"repository"' in res.stdout and str(tmp_path) in res.stdout


def test_a_value_typed_after_the_subcommand_wins_over_one_before_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    res = subprocess.run([MMOPS, "repo", "--repo", str(tmp_path / "a"), "list", "--repo",
                          str(tmp_path / "b"), "--json"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "REPO": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert str(tmp_path / "b") in res.stdout


@pytest.mark.parametrize("group", ["remote", "tunnel", "schedule"])
def test_host_is_accepted_after_the_subcommand_of_every_remote_group(group: str) -> None:
    sub = {"remote": "backup", "tunnel": "backup", "schedule": "status"}[group]
    for argv in ([group, "--host", "x", sub, "--help"], [group, sub, "--host", "x", "--help"]):
        res = CliRunner().invoke(main, argv)
        assert res.exit_code == 0, (argv, res.output)


def test_fleet_and_sandbox_options_work_after_the_subcommand(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["sandbox", "status", "--dir", str(tmp_path / "none")])
    assert res.exit_code == 1 and "not running" in res.output
    res = CliRunner().invoke(main, ["sandbox", "--dir", str(tmp_path / "none"), "status"])
    assert res.exit_code == 1 and "not running" in res.output
    res = CliRunner().invoke(main, ["fleet", "backup", "--hosts", str(tmp_path / "no.toml")])
    assert res.exit_code != 2 or "No such option" not in res.output


def test_shell_completion_as_the_readme_documents_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'eval "$(_MMOPS_COMPLETE=bash_source mmops)"' in readme
    script = subprocess.run([MMOPS], env={"_MMOPS_COMPLETE": "bash_source", "PATH": "/usr/bin"},
                            capture_output=True, text=True).stdout
    assert "_mmops_completion" in script
    words = subprocess.run([MMOPS], capture_output=True, text=True, env={
        "_MMOPS_COMPLETE": "bash_complete", "COMP_WORDS": "mmops repo prune --re",
        "COMP_CWORD": "3", "PATH": "/usr/bin"}).stdout
    assert "--repo" in words  # the group's option, offered after the subcommand too
