"""The remote-ops agent end to end: real sshd, real PostgreSQL, through `make` and `mmops`."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.package_identity import content_hash
from tests.fidelity import data_digest, schema_text
from tests.remote_sandbox import MMOPS, Remote, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.sshd]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


async def _sql(remote: Remote, sql: str) -> None:
    conn = await asyncpg.connect(**remote.url.connect_kwargs())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _digest(remote: Remote) -> dict[str, str]:
    got = data_digest(remote.url)
    return asyncio.run(got) if asyncio.iscoroutine(got) else got  # type: ignore[return-value]


# ---- setup ------------------------------------------------------------------------------------


def test_setup_is_idempotent_and_the_second_run_only_verifies(provisioned: Remote) -> None:
    # Other work may edit ops/ while this runs (a real drift); retry until the tree held still.
    for _attempt in range(3):
        tree = content_hash()
        provisioned.make("setup-remote-ops")
        started = time.monotonic()
        res = provisioned.make("setup-remote-ops")
        elapsed = time.monotonic() - started
        if content_hash() == tree:
            break
    assert res.returncode == 0, res.stderr
    assert "already up to date (verified)" in res.stdout
    assert elapsed < 15
    agent = json.loads((provisioned.ops_dir / "agent.json").read_text())
    assert len(agent["hash"]) == 64 and agent["version"]
    assert _mode(provisioned.ops_dir) == 0o700
    assert _mode(provisioned.ops_dir / "tmp") == 0o700


def test_drift_is_detected_and_resynced_before_a_backup(
    provisioned: Remote, backup_dir: Path
) -> None:
    record = provisioned.ops_dir / "agent.json"
    agent = json.loads(record.read_text())
    agent["hash"] = "0" * 64
    st = record.stat()
    record.write_text(json.dumps(agent))
    os.chown(record, st.st_uid, st.st_gid)
    res = provisioned.make("db-backup-ops", BACKUP_DIR=str(backup_dir))
    assert res.returncode == 0, res.stderr
    assert "Drift" in res.stderr and "re-synced" in res.stderr
    assert json.loads(record.read_text())["hash"] != "0" * 64
    again = provisioned.make("setup-remote-ops")
    assert "already up to date" in again.stdout


# ---- backup → restore ---------------------------------------------------------------------------


def test_backup_restore_round_trip_equals_the_source(provisioned: Remote, backup_dir: Path) -> None:
    remote = provisioned
    schema_before = schema_text(None, remote.url)
    data_before = _digest(remote)

    res = remote.make("db-backup-ops", BACKUP_DIR=str(backup_dir))
    assert res.returncode == 0, res.stderr
    files = list(backup_dir.glob("*.mmops"))
    assert len(files) == 1 and _files(backup_dir) == [files[0].name]
    assert _mode(files[0]) == 0o600
    for word in ("file", "size", "tables", "rows", "alembic", "duration", str(files[0])):
        assert word in res.stdout
    assert _mode(backup_dir) == 0o700  # BACKUP_DIR is created private, as in every mode
    assert remote.leftover_tmp() == []

    asyncio.run(_sql(remote, "DELETE FROM documents; UPDATE users SET email = 'x' || email"))
    assert _digest(remote) != data_before
    safety_before = _files(remote.ops_dir / "safety")

    res = remote.make("db-restore-ops", BACKUP=str(files[0]), YES="1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "row counts checked" in res.stdout
    assert "alembic" in res.stdout and "documents" in res.stdout  # the plan was shown
    assert _digest(remote) == data_before
    assert schema_text(None, remote.url) == schema_before
    safety = _files(remote.ops_dir / "safety")
    assert len(safety) == min(len(safety_before) + 1, 5)
    assert all(_mode(remote.ops_dir / "safety" / n) == 0o600 for n in safety)
    assert remote.leftover_tmp() == []


def test_restore_without_yes_needs_the_typed_database_name(
    provisioned: Remote, backup_dir: Path
) -> None:
    res = provisioned.mmops("backup", "--backup-dir", str(backup_dir))
    assert res.returncode == 0, res.stderr
    before = _digest(provisioned)
    archive = next(backup_dir.glob("*.mmops"))
    # A real terminal (util-linux `script` gives the command a pty) with a wrong name typed.
    res = subprocess.run(
        ["script", "-qec", shlex.join([str(MMOPS), "remote", "restore", str(archive)]),
         "/dev/null"], env=provisioned.cmd_env(),
        input="not-the-name\n", capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 8, res.stdout + res.stderr
    assert "did not match; nothing was changed" in res.stdout  # the pty merges both streams
    assert "Aborted" not in res.stdout
    # No terminal at all (a pipe, cron, CI): refused with what to do, never click's "Aborted!".
    res = subprocess.run(
        [MMOPS, "remote", "restore", str(archive)], env=provisioned.cmd_env(),
        input="markdown_manager\n", capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 8, res.stdout + res.stderr
    assert "Pass --yes (make: YES=1)" in res.stderr and "Aborted" not in res.stderr
    assert _digest(provisioned) == before


def test_failing_restore_leaves_the_database_unchanged_and_the_safety_backup(
    provisioned: Remote, backup_dir: Path
) -> None:
    remote = provisioned
    res = remote.mmops("backup", "--backup-dir", str(backup_dir))
    assert res.returncode == 0, res.stderr
    archive = next(backup_dir.glob("*.mmops"))
    asyncio.run(_sql(remote, "UPDATE documents SET title = title || ' (edited)'"))
    before = _digest(remote)
    safety_before = set(_files(remote.ops_dir / "safety"))

    async def hold_lock_during(run: object) -> subprocess.CompletedProcess[str]:
        conn = await asyncpg.connect(**remote.url.connect_kwargs())
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE documents IN ACCESS SHARE MODE")
                return await asyncio.to_thread(run)  # type: ignore[arg-type]
        finally:
            await conn.close()

    res = asyncio.run(hold_lock_during(
        lambda: remote.mmops("restore", str(archive), "--yes", "--lock-timeout", "1")
    ))
    assert res.returncode == 9, res.stdout + res.stderr
    assert "unchanged" in res.stderr or "nothing was changed" in res.stderr
    assert _digest(remote) == before
    new_safety = set(_files(remote.ops_dir / "safety")) - safety_before
    assert new_safety or len(safety_before) == 5
    assert remote.leftover_tmp() == []


# ---- host keys --------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(
    provisioned: Remote, tmp_path: Path
) -> None:
    remote = provisioned
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = Path(remote.state.ssh_config).read_text()
    config = "\n".join(
        f"    UserKnownHostsFile {known}" if "UserKnownHostsFile" in line else line
        for line in config.splitlines()
    ) + "\n"
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(config)

    res = remote.make("setup-remote-ops", SSH_CONFIG=str(ssh_config))
    assert res.returncode != 0
    assert remote.state.host_key_fingerprint in res.stderr
    assert "--accept-new-host-key" in res.stderr and "ACCEPT_NEW_HOST_KEY=1" in res.stderr
    assert known.read_text() == ""

    res = remote.make("setup-remote-ops", SSH_CONFIG=str(ssh_config), ACCEPT_NEW_HOST_KEY="1")
    assert res.returncode == 0, res.stderr
    assert f"[127.0.0.1]:{remote.state.ssh_port}" in known.read_text()
    res = remote.make("setup-remote-ops", SSH_CONFIG=str(ssh_config))
    assert res.returncode == 0, res.stderr


# ---- clear messages ---------------------------------------------------------------------------


def test_missing_env_file_missing_url_and_unreachable_db_each_say_so(
    provisioned: Remote, backup_dir: Path
) -> None:
    remote = provisioned
    missing = remote.mmops("backup", ENV_FILE=str(remote.home / "nope.env"),
                           BACKUP_DIR=str(backup_dir))
    assert missing.returncode == 3
    assert "does not exist on the server" in missing.stderr

    no_url = remote.write_server_file("no-url.env", "OTHER=1\n")
    res = remote.mmops("backup", ENV_FILE=str(no_url), BACKUP_DIR=str(backup_dir))
    assert res.returncode == 3
    assert "does not define DATABASE_URL" in res.stderr

    dead = remote.url.with_host_port("127.0.0.1", 9)
    bad = remote.write_server_file(
        "dead-db.env",
        f"DATABASE_URL=postgresql://{dead.username}:{remote.password}@127.0.0.1:9/"
        f"{dead.database}\n",
    )
    res = remote.mmops("backup", ENV_FILE=str(bad), BACKUP_DIR=str(backup_dir))
    assert res.returncode == 4
    assert "Cannot reach PostgreSQL at 127.0.0.1:9" in res.stderr
    assert _files(backup_dir) == []
    assert remote.leftover_tmp() == []

    res = remote.mmops("doctor", ENV_FILE=str(no_url))
    assert res.returncode != 0
    assert "[FAIL] DATABASE_URL" in res.stdout and "[ok] ssh" in res.stdout


def test_doctor_reports_every_check_ok(provisioned: Remote) -> None:
    res = provisioned.mmops("doctor")
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("ssh", "host key", "python", "venv", "agent", "env file", "DATABASE_URL",
                 "database", "free disk"):
        assert f"[ok] {name}" in res.stdout


def test_server_python_without_venv_gets_the_apt_hint(provisioned: Remote) -> None:
    remote = provisioned
    remote.write_server_file("fakepy/shadow/ensurepip/__init__.py",
                             "raise ImportError('No module named ensurepip')\n", 0o644)
    fake = remote.write_server_file(
        "fakepy/python3",
        f'#!/bin/sh\nPYTHONPATH={remote.home}/fakepy/shadow exec /usr/bin/python3 "$@"\n', 0o755,
    )
    res = remote.make("setup-remote-ops", REMOTE_PYTHON=str(fake), OPS_DIR="~/other-ops")
    assert res.returncode != 0 and "Error 10" in res.stderr  # make reports mmops' exit code
    assert "python3-venv" in res.stderr and "apt-get install" in res.stderr
    assert not (remote.home / "other-ops" / "venv").exists()


# ---- interruption -----------------------------------------------------------------------------


@pytest.fixture
def big_table(provisioned: Remote) -> Iterator[None]:
    """A table large enough that a backup takes a few seconds (dropped afterwards)."""
    asyncio.run(_sql(
        provisioned,
        "CREATE TABLE zz_big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) "
        "|| md5((g * 13)::text) AS body FROM generate_series(1, 1500000) g",
    ))
    try:
        yield
    finally:
        asyncio.run(_sql(provisioned, "DROP TABLE IF EXISTS zz_big"))


def _start_backup(remote: Remote, backup_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MMOPS, "remote", "backup", "--backup-dir", str(backup_dir)],
        env=remote.cmd_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_phase(proc: subprocess.Popen[str], phase: str, seen: list[str]) -> bool:
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if f"… {phase}" in line:
            return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_backup_leaves_no_partial_file_and_no_remote_temp_dir(
    provisioned: Remote, backup_dir: Path, big_table: None, sig: signal.Signals
) -> None:
    remote = provisioned
    proc = _start_backup(remote, backup_dir)
    seen: list[str] = []
    phase = "data" if sig == signal.SIGINT else "transfer"
    assert _wait_for_phase(proc, phase, seen), "".join(seen)
    tmpdirs = remote.leftover_tmp()
    assert tmpdirs, "the agent's temp dir should exist mid-backup"
    assert all(_mode(d) == 0o700 for d in tmpdirs)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    text = "".join(seen) + out + err
    assert remote.password not in text
    if sig == signal.SIGINT:
        assert proc.returncode == 130, text
        assert "interrupted" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert list(backup_dir.glob("*.mmops")) == []
    assert [p for p in _files(backup_dir) if not p.startswith(".")] == []
    # The agent notices the closed channel and removes its own temp dir.
    assert wait_until(lambda: remote.leftover_tmp() == [], 30), remote.leftover_tmp()

    res = remote.mmops("backup", "--backup-dir", str(backup_dir))
    assert res.returncode == 0, res.stderr
    assert len(_files(backup_dir)) == 1
    assert remote.leftover_tmp() == []


def test_no_password_in_any_command_line_during_a_backup(
    provisioned: Remote, backup_dir: Path
) -> None:
    remote = provisioned
    secret = remote.password.encode()
    hits: list[str] = []
    seen_agent = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"ops.agent" in cmdline:
                    seen_agent.append(cmdline)
                if secret in cmdline:
                    hits.append(cmdline.decode(errors="replace"))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        res = remote.make("db-backup-ops", BACKUP_DIR=str(backup_dir))
    finally:
        stop.set()
        sampler.join()
    assert res.returncode == 0, res.stderr
    assert seen_agent, "the sampler never saw the agent run"
    assert hits == []
    assert all(secret.decode() not in o for o in remote.outputs)


def test_root_only_env_file_without_sudo_says_how_to_fix(
    provisioned: Remote, backup_dir: Path
) -> None:
    env_file = provisioned.work / "root-only.env"
    env_file.write_text(f"DATABASE_URL=postgresql://u:{provisioned.password}@127.0.0.1/db\n")
    os.chmod(env_file, 0o600)
    res = provisioned.mmops("backup", ENV_FILE=str(env_file), BACKUP_DIR=str(backup_dir))
    assert res.returncode == 3
    assert f"is not readable by {provisioned.state.login_user}" in res.stderr
    assert "sudo" in res.stderr


def test_offline_setup_ships_a_wheelhouse_and_installs_without_an_index(
    provisioned: Remote,
) -> None:
    res = provisioned.make("setup-remote-ops", OFFLINE="1", OPS_DIR="~/offline-ops")
    assert res.returncode == 0, res.stderr
    assert "offline yes" in res.stdout
    wheels = _files(provisioned.home / "offline-ops" / "wheels")
    assert any(n.startswith("asyncpg-") for n in wheels)
    assert any(n.startswith("markdown_manager_ops-") for n in wheels)
    res = provisioned.mmops("status", OPS_DIR="~/offline-ops")
    assert res.returncode == 0, res.stderr
    assert "alembic" in res.stdout


def test_partitioned_tables_round_trip_through_the_agent_and_the_row_check_passes(
    provisioned: Remote, backup_dir: Path
) -> None:
    """Leaf partitions are compared leaf to leaf: the plan lists no partition as new and no
    parent as disappearing, and a committed restore is reported as restored."""
    remote = provisioned
    asyncio.run(_sql(remote, """
        CREATE TABLE events (id int GENERATED BY DEFAULT AS IDENTITY, at date NOT NULL,
                             PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01')
            TO ('2026-01-01');
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01')
            TO ('2027-01-01');
        INSERT INTO events (at) SELECT DATE '2025-06-01' + g FROM generate_series(1, 300) g;
    """))
    try:
        res = remote.mmops("backup", "--backup-dir", str(backup_dir))
        assert res.returncode == 0, res.stderr
        asyncio.run(_sql(remote, "DELETE FROM events WHERE at >= DATE '2026-01-01'"))
        res = remote.mmops("restore", "latest", "--backup-dir", str(backup_dir), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "public.events_2026" in res.stdout and " new " not in res.stdout
        assert "will disappear: public.events" not in res.stdout
        assert "row counts checked" in res.stdout
    finally:
        asyncio.run(_sql(remote, "DROP TABLE IF EXISTS events"))
