"""Bad days through the real interfaces: full disks (laptop and server), kill -9 of either side,
an SSH connection dropped mid-transfer.

Each test asserts what an operator relies on: one sentence (one ``error:`` line, no traceback)
with its exit code from ``ops.errors``, no data lost (the database as it was), and nothing left
behind (or, where a killed process cannot clean up, the next run removes it and says so).
Disk-full cases mount a small tmpfs (root only), as TOOLING.md describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.dburl import DbUrl
from tests.cli_helpers import MMOPS as MMOPS_PATH
from tests.cli_helpers import mmops, url_text
from tests.remote_sandbox import MMOPS, Remote, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.sshd,
    pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs mounts and the server side need root"),
]

BIG_ROWS = 1_500_000  # ~80 MB backup file: a backup or restore takes seconds, not milliseconds


# ---- helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, owner: str | None = None) -> Iterator[Path]:
    """A small tmpfs at ``path`` (0700, owned by ``owner`` or root), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    uid = gid = 0
    if owner is not None:
        pw = pwd.getpwnam(owner)
        uid, gid = pw.pw_uid, pw.pw_gid
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},uid={uid},gid={gid},mode=0700",
                    "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def one_sentence(res: subprocess.CompletedProcess[str] | tuple[int, str]) -> str:
    """The single ``error:`` line of a failed command (and no traceback anywhere)."""
    stderr = res.stderr if isinstance(res, subprocess.CompletedProcess) else res[1]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


async def _execute(url: DbUrl, sql: str) -> None:
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def add_big_table(url: DbUrl, rows: int = BIG_ROWS) -> None:
    """Barely compressible rows (three md5s each), so the file is about as big as the data."""
    asyncio.run(_execute(
        url,
        "CREATE TABLE zz_big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) "
        f"|| md5((g * 13)::text) AS body FROM generate_series(1, {rows}) g",
    ))


async def _fingerprint(url: DbUrl) -> dict[str, tuple[int, int]]:
    conn = await asyncpg.connect(**url.connect_kwargs())
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
        out = {}
        for r in tables:
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, coalesce(sum(hashtextextended(x::text, 0)), 0) AS h "
                f"FROM ONLY {r['t']} x")  # noqa: S608 - names come from pg_tables, quoted
            out[r["t"]] = (int(row["n"]), int(row["h"]))
        return out
    finally:
        await conn.close()


def fingerprint(url: DbUrl) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent hash of every table: equal means no data changed."""
    return asyncio.run(_fingerprint(url))


def everything_in(directory: Path) -> list[str]:
    """All names under ``directory``, hidden ones included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) \
        if directory.exists() else []


def wait_for(pred: Callable[[], object], timeout: float = 120.0, every: float = 0.005) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("condition not reached")


def hidden_partial(directory: Path, min_size: int) -> Path | None:
    if not directory.is_dir():
        return None
    for p in directory.iterdir():
        with contextlib.suppress(OSError):
            if ".partial" in p.name and p.stat().st_size > min_size:
                return p
    return None


def direct_env(url: DbUrl) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = url_text(url)
    return env


# ---- direct mode: the laptop's disk and the laptop's process ----------------------------------


def test_backup_into_a_full_disk_is_one_sentence_exit_3_and_leaves_nothing(
    make_db: Callable[..., DbUrl], tmp_path: Path
) -> None:
    url = make_db()
    add_big_table(url, 200_000)  # ~10 MB file for a 2 MB disk
    before = fingerprint(url)
    out = tmp_path / "full"
    with tmpfs(out, "2m"):
        res = mmops("backup", "-o", str(out), url=url)
        left = everything_in(out)
    line = one_sentence(res)
    assert res.returncode == 3, res.stderr  # ConfigError: the environment, not a corrupt file
    assert f"the disk holding {out} is full" in line
    assert "MiB of the backup were written" in line
    assert "the database was not changed" in line and "partial file was removed" in line
    assert left == []
    assert fingerprint(url) == before


def test_killed_direct_backup_leaves_a_pid_tagged_partial_the_next_run_removes(
    make_db: Callable[..., DbUrl], tmp_path: Path
) -> None:
    url = make_db()
    add_big_table(url)
    out = tmp_path / "backups"
    proc = subprocess.Popen([str(MMOPS_PATH), "backup", "-o", f"{out}/"], env=direct_env(url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        partial = wait_for(lambda: hidden_partial(out, 2 << 20))
    finally:
        proc.kill()  # SIGKILL: no cleanup can run
        proc.communicate(timeout=60)
    assert isinstance(partial, Path)
    # The writer's pid is in the name, so the next run knows at once that its owner is gone.
    assert re.fullmatch(rf"\..+\.mmops\.partial-{proc.pid}-[0-9a-f]+", partial.name), partial
    assert partial.exists()

    res = mmops("backup", "-o", f"{out}/", url=url)
    assert res.returncode == 0, res.stderr
    assert f"Removed a leftover from an interrupted run: {partial}" in res.stderr
    assert not partial.exists()
    names = everything_in(out)
    assert len(names) == 1 and names[0].endswith(".mmops"), names


def test_killed_direct_restore_keeps_the_database_and_its_safety_partial_is_removed_next_run(
    make_db: Callable[..., DbUrl], tmp_path: Path
) -> None:
    url = make_db()
    add_big_table(url)
    backups = tmp_path / "backups"
    made = mmops("backup", "-o", f"{backups}/", url=url)
    assert made.returncode == 0, made.stderr
    file = Path(made.stdout.strip().splitlines()[0])
    asyncio.run(_execute(url, "DELETE FROM zz_big WHERE id % 2 = 0"))
    before = fingerprint(url)

    safety = backups / "safety"
    proc = subprocess.Popen(
        [str(MMOPS_PATH), "restore", str(file), "--yes", "--backup-dir", str(backups)],
        env=direct_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        partial = wait_for(lambda: hidden_partial(safety, 2 << 20))
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert isinstance(partial, Path) and partial.exists()
    assert fingerprint(url) == before  # killed during the safety backup: nothing changed

    # The next run of any command that touches the backup dir removes the dead run's partial.
    res = mmops("backup", "-o", f"{backups}/", url=url)
    assert res.returncode == 0, res.stderr
    assert f"Removed a leftover from an interrupted run: {partial}" in res.stderr
    assert everything_in(safety) == []


# ---- agent mode: the server's disk, the agent's process, the SSH connection -----------------


@pytest.fixture(scope="module")
def big_backup(provisioned: Remote, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ~80 MB backup of the sandbox app database with zz_big (which stays while the module
    runs, so safety backups and restores take seconds)."""
    remote = provisioned
    add_big_table(remote.url)
    try:
        out = tmp_path_factory.mktemp("big-backup")
        res = mmops("backup", "-o", str(out), url=remote.url)
        assert res.returncode == 0, res.stderr
        yield Path(res.stdout.strip().splitlines()[0])
    finally:
        asyncio.run(_execute(remote.url, "DROP TABLE IF EXISTS zz_big"))


def start_remote(remote: Remote, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([MMOPS, "remote", *args, "--progress-json"], env=remote.cmd_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(remote.work))


class StderrWatch:
    """Reads a command's ``--progress-json`` stderr in a thread, so what we look at is what
    the command is doing now (a pipe lets it run hundreds of lines ahead of a slow reader)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._progress: list[dict[str, object]] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            with contextlib.suppress(ValueError, AttributeError):
                p = json.loads(line).get("progress")
                if isinstance(p, dict):
                    self._progress.append(p)

    def wait(self, stop: Callable[[dict[str, object]], bool], timeout: float = 300) -> bool:
        """True as soon as ``stop(progress)`` holds for a new progress line."""
        seen = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while seen < len(self._progress):
                seen += 1
                if stop(self._progress[seen - 1]):
                    return True
            if not self._thread.is_alive() and seen == len(self._progress):
                return False
            time.sleep(0.002)
        return False

    def text(self) -> str:
        self._thread.join(60)
        return "".join(self.lines)


def finish(remote: Remote, proc: subprocess.Popen[str], watch: StderrWatch) -> tuple[int, str]:
    # Not communicate(): it would read stderr too and take lines from under the watcher.
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=300)
    text = watch.text()
    proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    remote.outputs.append(text + out)
    assert remote.password not in text + out
    return proc.returncode, text


def server_processes(remote: Remote, *needles: str) -> list[int]:
    uid = pwd.getpwnam(remote.state.login_user).pw_uid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            found.append(int(entry.name))
    return found


def sshd_connections(remote: Remote) -> list[int]:
    """The sshd processes serving connections (every sshd below the sandbox's listener: the
    privileged monitor and the child that holds the socket), not the agent they started."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        names[int(entry.name)] = stat.split("(", 1)[1].rsplit(")", 1)[0]
    found, frontier = [], [remote.state.sshd_pid]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and names[c].startswith("sshd")]
        found += children
        frontier += children
    return found


def test_restore_is_refused_before_the_upload_when_the_servers_temp_dir_is_too_small(
    provisioned: Remote, big_backup: Path
) -> None:
    remote = provisioned
    before = fingerprint(remote.url)
    tmp = remote.ops_dir / "tmp"
    size = big_backup.stat().st_size
    with tmpfs(tmp, "4m", owner=remote.state.login_user):
        res = remote.mmops("restore", str(big_backup), "--yes")
        assert wait_until(lambda: remote.leftover_tmp() == [], 30), remote.leftover_tmp()
    line = one_sentence(res)
    assert res.returncode == 3, res.stderr
    assert f"{tmp} on " in line and "bytes free" in line and f"needs {size} bytes" in line
    assert "nothing was uploaded or restored" in line
    assert "Pushing" not in res.stderr and "transfer" not in res.stderr
    assert fingerprint(remote.url) == before


def test_servers_disk_filling_up_mid_upload_is_one_sentence_and_nothing_restored(
    provisioned: Remote, big_backup: Path
) -> None:
    remote = provisioned
    before = fingerprint(remote.url)
    tmp = remote.ops_dir / "tmp"
    with tmpfs(tmp, "120m", owner=remote.state.login_user):
        proc = start_remote(remote, "restore", str(big_backup), "--yes")
        watch = StderrWatch(proc)
        try:
            # Room for the file when the agent said `ready`; then something else takes it. The
            # upload may already have taken the last byte: then even creating the filler fails
            # with ENOSPC, and the disk is full all the same (a CI run saw exactly that).
            wait_for(lambda: any(hidden_partial(d, 4 << 20) for d in remote.leftover_tmp()))
            with contextlib.suppress(OSError), (tmp / "filler").open("wb") as fh:
                while True:
                    fh.write(b"\0" * (1 << 20))
        finally:
            code, text = finish(remote, proc, watch)
            (tmp / "filler").unlink(missing_ok=True)
        assert wait_until(lambda: remote.leftover_tmp() == [], 30), remote.leftover_tmp()
    line = one_sentence((code, text))
    assert code == 3, text
    assert f"Uploading {big_backup.name} to {tmp}/" in line
    assert "the server's disk may be full; nothing was restored" in line
    assert fingerprint(remote.url) == before


@pytest.mark.parametrize("phase", ["safety", "restore"])
def test_agent_killed_mid_restore_leaves_the_database_as_it_was_and_the_next_run_cleans_up(
    provisioned: Remote, big_backup: Path, tmp_path: Path, phase: str
) -> None:
    remote = provisioned
    asyncio.run(_execute(remote.url, "DELETE FROM zz_big WHERE id % 3 = 0"))
    before = fingerprint(remote.url)
    proc = start_remote(remote, "restore", str(big_backup), "--yes")
    watch = StderrWatch(proc)
    state = {"safety": False, "restore": False}

    def at_phase(p: dict[str, object]) -> bool:
        if p.get("phase") == "safety":
            state["safety"] = True
        elif state["safety"] and str(p.get("message") or "").startswith("dropping the objects"):
            state["restore"] = True
        if phase == "safety":
            return state["safety"] and p.get("phase") == "data" and int(p.get("done") or 0) > 0
        return state["restore"] and p.get("phase") == "data" and int(p.get("done") or 0) > 0

    try:
        assert watch.wait(at_phase), "".join(watch.lines)
        agents = server_processes(remote, "ops.agent", "restore")
        assert agents
        for pid in agents:
            os.kill(pid, signal.SIGKILL)
    finally:
        code, text = finish(remote, proc, watch)
    one_sentence((code, text))
    assert code not in (0, 3), text
    assert fingerprint(remote.url) == before  # PostgreSQL rolled the open transaction back
    # The laptop cannot know whether the commit happened: it says how to check, never
    # "nothing was changed", and where the safety backup is.
    assert "either unchanged or fully restored" in text and "mmops remote status" in text
    assert "nothing was changed" not in text and "safety" in text
    leftovers = [str(p) for p in remote.leftover_tmp()]
    assert leftovers, "a killed agent cannot remove its own temp dir"
    safety = remote.ops_dir / "safety"
    partials = [str(p) for p in safety.iterdir() if p.name.startswith(".")]
    if phase == "safety":
        assert partials, "the killed safety backup leaves its partial file"

    res = remote.mmops("backup", "--backup-dir", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr
    for path in leftovers + partials:
        assert f"Removed a leftover from an interrupted run: {path}" in res.stderr + res.stdout
    assert remote.leftover_tmp() == []
    assert [p.name for p in safety.iterdir() if p.name.startswith(".")] == []


def test_ssh_dropped_mid_pull_is_one_sentence_and_leaves_no_file(
    provisioned: Remote, big_backup: Path, tmp_path: Path
) -> None:
    remote = provisioned
    backups = tmp_path / "backups"
    proc = start_remote(remote, "backup", "--backup-dir", str(backups))
    watch = StderrWatch(proc)
    try:
        assert watch.wait(
            lambda p: p.get("phase") == "transfer" and int(p.get("done") or 0) > 2 << 20,
        ), "".join(watch.lines)
        connections = sshd_connections(remote)
        assert connections
        for pid in connections:
            os.kill(pid, signal.SIGKILL)
    finally:
        code, text = finish(remote, proc, watch)
    line = one_sentence((code, text))
    assert code == 10, text
    assert "SSH connection to the server was lost while pulling" in line
    assert "no partial file was kept" in line
    assert everything_in(backups) == []
    # The agent sees its channel close and removes its temp dir; or the next run does.
    res = remote.mmops("backup", "--backup-dir", str(backups))
    assert res.returncode == 0, res.stderr
    assert remote.leftover_tmp() == []
    assert len([n for n in everything_in(backups) if n.endswith(".mmops")]) == 1
