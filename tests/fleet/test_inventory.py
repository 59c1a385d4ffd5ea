"""The inventory: settings merged host > [defaults] > command line, per-host BACKUP_DIR/REPO, and
one-sentence errors naming file, line and key — through the real CLI for the exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.errors import ConfigError, UsageError
from ops.fleet import load_inventory

BIN = Path(sys.executable).parent
MMOPS = str(BIN / "mmops")
ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_host_settings_win_over_defaults_which_win_over_the_command_line(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, """
[defaults]
env_file = "/etc/app.env"
keep = "daily=7"
keep_local = true

[hosts.app1]
host = "deploy@app1.example.com:2222"

[hosts.app2]
env_file = "/srv/app2/.env"
keep_local = false
tables = ["users", "documents"]
"""), {"ENV_FILE": "/cli.env", "KEEP": "last=1", "SSH_CONFIG": "/cli/ssh_config",
       "KEEP_LOCAL": "1"})
    app1, app2 = inv.hosts
    base = {"ENV_FILE": "/cli.env", "SSH_CONFIG": "/cli/ssh_config", "KEEP_LOCAL": "1"}
    env1, env2 = app1.environment(base), app2.environment(base)
    assert (app1.name, app1.host) == ("app1", "deploy@app1.example.com:2222")
    assert (app2.name, app2.host) == ("app2", "app2")  # the table's name is the ssh alias
    assert env1["ENV_FILE"] == "/etc/app.env" and env2["ENV_FILE"] == "/srv/app2/.env"
    assert env1["SSH_CONFIG"] == env2["SSH_CONFIG"] == "/cli/ssh_config"  # from the command line
    assert env1["KEEP"] == env2["KEEP"] == "daily=7"
    assert env1["KEEP_LOCAL"] == "1" and "KEEP_LOCAL" not in env2  # false removes the flag
    assert env2["TABLES"] == "users,documents"
    assert env1["HOST"] == "deploy@app1.example.com:2222"


def test_a_shared_backup_dir_or_repo_gets_one_subdirectory_per_host(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, """
[defaults]
repo = "s3://acme/markdown/"

[hosts.a]
[hosts.b]
backup_dir = "/data/b-backups"
repo = "s3://acme/b-only"
"""), {"BACKUP_DIR": "/laptop/backups"})
    a, b = (h.environment({}) for h in inv.hosts)
    assert a["REPO"] == "s3://acme/markdown/a" and a["BACKUP_DIR"] == "/laptop/backups/a"
    assert b["REPO"] == "s3://acme/b-only" and b["BACKUP_DIR"] == "/data/b-backups"
    (m,) = load_inventory(_write(tmp_path, "[hosts.m]\n"), {"MMOPS_REPO": "gs://b/p"}).hosts
    assert m.environment({"MMOPS_REPO": "gs://b/p"})["REPO"] == "gs://b/p/m"  # REPO's alias
    # with nothing anywhere, BACKUP_DIR is ./backups/<name> and REPO stays unset
    (c,) = load_inventory(_write(tmp_path, "[hosts.c]\n"), {}).hosts
    assert c.environment({})["BACKUP_DIR"] == "./backups/c" and "REPO" not in c.settings


@pytest.mark.parametrize(("text", "message"), [
    ("[hosts.a]\nhost = 'x'\n\n[hosts.b]\nenv_fle = '/x'\n",
     "inventory.toml:5: unknown key 'env_fle' in [hosts.b] (did you mean 'env_file'?)."),
    ("[defaults]\nrepo = 's3://x/y'\naws_secret_access_key = 'k'\n[hosts.a]\n",
     "inventory.toml:3: unknown key 'aws_secret_access_key' in [defaults] (secrets — storage "
     "keys, NOTIFY, DATABASE_URL — stay in the environment or the server's env files, never in "
     "an inventory)."),
    ("[hosts.a]\nnotify = 'slack://token'\n",
     "inventory.toml:2: unknown key 'notify' in [hosts.a] (secrets — storage keys, NOTIFY, "
     "DATABASE_URL — stay in the environment or the server's env files, never in an "
     "inventory)."),
    ("[hosts.a]\nlock_days = '7'\n",
     "inventory.toml:2: 'lock_days' in [hosts.a] must be an integer, not str."),
    ("[hosts.a]\nkeep_local = 'yes'\n",
     "inventory.toml:2: 'keep_local' in [hosts.a] must be true or false, not str."),
    ("[hosts.a]\nhost = 'x'\nenv_file = \n",
     "inventory.toml:3: not valid TOML: Invalid value (column 12)."),
    ("[defaults]\nrepo = '/srv'\n",
     "inventory.toml: no hosts: add at least one [hosts.NAME] table."),
    ("[[hosts]]\nhost = 'a'\n",
     "inventory.toml:1: hosts must be tables named [hosts.NAME], one per host."),
    ("[hosts.\"bad name\"]\n",
     "inventory.toml:1: host name 'bad name' must be letters, digits, '.', '_' or '-' (it names "
     "the host's log file)."),
    ("parallel = 3\n[hosts.a]\n",
     "inventory.toml:1: unknown top-level key 'parallel' (an inventory has [defaults] and "
     "[hosts.NAME] tables)."),
    ("[defaults]\nhost = 'x'\n[hosts.a]\n",
     "inventory.toml:2: 'host' cannot be a default: each host names its own (or is named by its "
     "table)."),
    ("[hosts.a]\nenv_file = ''\n", "inventory.toml:2: 'env_file' in [hosts.a] is empty."),
])
def test_inventory_errors_are_one_sentence_naming_file_line_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_inventory(path, {})
    assert str(err.value) == f"{tmp_path}/{message}"


def test_a_missing_inventory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="there is no such inventory file"):
        load_inventory(tmp_path / "nope.toml", {})


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMOPS, "fleet", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_cli_inventory_error_exits_3_with_one_line_and_runs_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "[hosts.a]\nhost = '127.0.0.1'\nrepoo = '/srv'\n")
    res = _cli("backup", "--hosts", str(path), "--log-dir", str(tmp_path / "logs"))
    assert res.returncode == 3
    assert res.stderr == (f"error: {path}:3: unknown key 'repoo' in [hosts.a] (did you mean "
                          "'repo'?).\n")
    assert res.stdout == ""
    assert not (tmp_path / "logs").exists()  # refused before any host started


def test_cli_missing_inventory_exits_2(tmp_path: Path) -> None:
    res = _cli("setup", "--hosts", str(tmp_path / "missing.toml"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: HOSTS={tmp_path}/missing.toml: there is no such inventory file."]


def test_cli_schedule_needs_a_repo_for_every_host_before_anything_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, "[hosts.a]\nrepo = '/srv/backups'\n[hosts.b]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("REPO", "MMOPS_REPO")}
    res = _cli("schedule", "--hosts", str(path), "--log-dir", str(tmp_path / "logs"), env=env)
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [
        f"error: {path}: host 'b' has no repo for `fleet schedule`: set repo in [hosts.b] or "
        "[defaults], or REPO=… on the command line."]
    assert not (tmp_path / "logs").exists()


def test_make_target_with_hosts_dispatches_to_the_fleet_command(tmp_path: Path) -> None:
    """`make db-backup-ops HOSTS=…` runs `mmops fleet backup` (not the sandbox, not one host)."""
    path = _write(tmp_path, "[hosts.a]\nnot_a_key = 1\n")
    res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "db-backup-ops",
                          f"HOSTS={path}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2  # make's own code for a failed recipe
    assert "mmops fleet backup" in res.stdout
    assert f"error: {path}:2: unknown key 'not_a_key' in [hosts.a]." in res.stderr
    assert "sandbox" not in res.stdout + res.stderr


@pytest.mark.parametrize("target", ["db-restore-ops", "db-backup-ssh", "db-restore-ssh"])
def test_single_host_targets_with_only_hosts_refuse_instead_of_using_the_sandbox(
    tmp_path: Path, target: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "REMOTE_USER_HOST")}
    res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), target,
                          f"HOSTS={tmp_path}/inventory.toml", "BACKUP=latest"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert f"make {target} works on one host: set HOST=" in res.stderr
    assert "mmops" not in res.stdout and "sandbox" not in res.stdout + res.stderr
