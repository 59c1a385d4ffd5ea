"""Pure parts of the remote-ops agent, without a server: quoting, plans, retention, hashes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import zipfile
from pathlib import Path

import paramiko
import pytest

from ops.agent import select_safety_to_delete, stale_tmpdirs
from ops.errors import ConfigError, HostKeyError, RemoteError
from ops.remote.agent_run import agent_argv, error_from_message
from ops.remote.commands import quote_command
from ops.remote.connection import StrictHostKeyPolicy, fingerprint
from ops.remote.identity import content_hash, wheel_content_hash
from ops.remote.plan import build_plan
from ops.remote.provision import _manylinux_platforms


def test_quote_command_keeps_hostile_arguments_as_single_words() -> None:
    argv = ["python3", "-c", "print(1)", "x; rm -rf ~", "$(id)", "a b", "'q'"]
    assert shlex.split(quote_command(argv)) == argv
    out = subprocess.run(["sh", "-c", quote_command(["printf", "%s|", *argv[3:]])],
                         capture_output=True, text=True, check=True).stdout
    assert out == "x; rm -rf ~|$(id)|a b|'q'|"


def test_agent_argv_runs_the_venv_python_with_no_secret_options() -> None:
    argv = agent_argv("/home/u/ops", "backup", "--env-file", "/etc/m.env")
    assert argv[:4] == ["/home/u/ops/venv/bin/python", "-m", "ops.agent", "backup"]
    assert not any("DATABASE_URL" in a or "://" in a for a in argv)


def test_agent_error_message_becomes_the_same_exception_class() -> None:
    exc = error_from_message({"kind": "ConfigError", "message": "no env", "hint": "fix"})
    assert isinstance(exc, ConfigError) and exc.exit_code == 3 and str(exc) == "no env fix"
    assert isinstance(error_from_message({"kind": "os.system", "message": "x"}), RemoteError)


MANIFEST = {
    "database": "app", "created_at": "2026-01-01T00:00:00+00:00", "alembic_revision": "r2",
    "schemas": ["public"],
    "tables": [{"schema": "public", "name": "users", "rows": 3},
               {"schema": "public", "name": "documents", "rows": 10}],
}


def test_plan_lists_replaced_rows_dropped_tables_and_revision_warning() -> None:
    live = {"database": "app", "alembic_revision": "r3",
            "tables": [{"schema": "public", "name": "users", "rows": 5},
                       {"schema": "public", "name": "extra", "rows": 1},
                       {"schema": "audit", "name": "log", "rows": 9}]}
    plan = build_plan(MANIFEST, live, host="h", backup_file="f.mmops")
    assert plan.mode == "replace"
    assert plan.rows_to_load == 13 and plan.live_rows_replaced == 5
    assert [t.live_rows for t in plan.tables] == [5, None]
    assert plan.tables_dropped == ["public.extra"]
    assert any("r2" in w and "r3" in w for w in plan.warnings)


def test_plan_into_an_empty_database_creates() -> None:
    plan = build_plan(MANIFEST, {"database": "app", "alembic_revision": "r2", "tables": []},
                      host="h", backup_file="f")
    assert plan.mode == "create" and plan.warnings == [] and plan.tables_dropped == []


def test_safety_retention_keeps_the_newest_n() -> None:
    names = [f"safety-app-2026010{i}T000000Z.mmops" for i in range(1, 8)]
    assert select_safety_to_delete(names, 5) == names[:2]
    assert select_safety_to_delete(names[:3], 5) == []


def test_stale_tmpdirs_are_those_whose_agent_is_gone(tmp_path: Path) -> None:
    dead = tmp_path / "backup-dead"
    dead.mkdir()
    proc = subprocess.Popen(["true"])
    proc.wait()
    (dead / "owner.json").write_text(json.dumps({"pid": proc.pid}))
    fresh = tmp_path / "backup-fresh"  # no owner file yet, young: in use
    fresh.mkdir()
    old = tmp_path / "backup-old"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert stale_tmpdirs(tmp_path) == [old, dead] or stale_tmpdirs(tmp_path) == [dead, old]


def test_wheel_hash_equals_the_tree_hash(tmp_path: Path) -> None:
    pkg = tmp_path / "ops"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "m.py").write_text("y = 2\n")
    (pkg / "requirements.lock").write_text("a==1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for rel in ("__init__.py", "sub/m.py", "requirements.lock"):
            zf.write(pkg / rel, f"ops/{rel}")
        zf.writestr("x-0.1.dist-info/RECORD", "")
    assert wheel_content_hash(wheel) == content_hash(pkg)
    (pkg / "sub" / "m.py").write_text("y = 3\n")
    assert wheel_content_hash(wheel) != content_hash(pkg)


def test_manylinux_tags_for_the_servers_glibc() -> None:
    tags = _manylinux_platforms("x86_64", ("glibc", "2.36"))
    assert "manylinux_2_36_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags and tags[0] == "linux_x86_64"


def test_strict_policy_refuses_unknown_keys_and_appends_only_when_asked(tmp_path: Path) -> None:
    host_key = paramiko.RSAKey.generate(1024)
    client = paramiko.SSHClient()
    known = tmp_path / "known_hosts"
    accepted: list[str] = []
    with pytest.raises(HostKeyError) as info:
        StrictHostKeyPolicy(known, False, accepted).missing_host_key(
            client, "[127.0.0.1]:2222", host_key)
    assert fingerprint(host_key) in str(info.value)
    assert "--accept-new-host-key" in str(info.value) and not known.exists()
    StrictHostKeyPolicy(known, True, accepted).missing_host_key(
        client, "[127.0.0.1]:2222", host_key)
    assert known.read_text().startswith("[127.0.0.1]:2222 ssh-rsa ")
    assert oct(known.stat().st_mode & 0o777) == "0o600" and accepted
    assert isinstance(StrictHostKeyPolicy(known, False, []), paramiko.RejectPolicy)
