"""Where a backup lives before a repository has it, through the real `mmops` CLI (direct mode,
real PostgreSQL, a directory repository and SeaweedFS):

- an encrypted backup to a repository never writes its plaintext outside a private 0700
  directory under $TMPDIR (sampled while it runs), and a SIGKILLed run's directory is removed by
  the next command (issue 20);
- a failed upload keeps the verified backup, encrypted as asked, and says where (issue 17.3);
- two backups of one database in the same second both succeed under distinct names (17.4).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ops.archive import verify_archive
from tests.cli_helpers import MMOPS, url_text
from tests.repository.faults import FaultProxy

pytestmark = [pytest.mark.postgres]

BIG = """
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO notes SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
FROM generate_series(1, 400000) g;
"""
SMALL = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g;
"""


def environ(url=None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "REPO", "MMOPS_REPO", "ENCRYPT_TO", "AGE_IDENTITY",
                                "KEEP", "STORAGE_EMULATOR_HOST", "BACKUP_DIR", "TMPDIR"))}
    if url is not None:
        env["DATABASE_URL"] = url_text(url)
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MMOPS), *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


@pytest.fixture
def recipient(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "key.txt"
    res = subprocess.run([str(MMOPS), "key", "generate", "-o", str(key)], capture_output=True,
                         text=True, env=environ(), check=True)
    return key, res.stdout.strip()


@pytest.fixture
def big_db(pg15, make_db, tmp_path: Path) -> dict[str, str]:
    """A database whose backup takes a while; the environment of a run with $TMPDIR at
    tmp_path/tmp, started in tmp_path/cwd (both made empty)."""
    url = make_db(pg15)
    pg15.psql(BIG, url.database)
    for d in ("cwd", "tmp"):
        (tmp_path / d).mkdir()
    return environ(url, TMPDIR=str(tmp_path / "tmp"))


class Sampler(threading.Thread):
    """Walks ``roots`` every few milliseconds, recording every file seen (path → in a private
    staging dir?) until stopped."""

    def __init__(self, *roots: Path) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.seen: set[Path] = set()
        self.staging_modes: set[int] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for root in self.roots:
                for dirpath, _dirs, files in os.walk(root):
                    here = Path(dirpath)
                    if here.name.startswith("mmops-stage-"):
                        try:
                            self.staging_modes.add(here.stat().st_mode & 0o777)
                        except OSError:
                            pass
                    self.seen.update(here / f for f in files)
            time.sleep(0.003)

    def stop(self) -> set[Path]:
        self.halt.set()
        self.join()
        return self.seen


def _plain(path: Path) -> bool:
    """A file that holds (part of) an unencrypted backup, by its name."""
    return ".mmops" in path.name and ".mmops.age" not in path.name


def _staged_backup(env: dict[str, str], age_recipient: str, cwd: Path, tmp: Path,
                   repo: Path) -> subprocess.Popen[str]:
    """An encrypted backup to ``repo`` started in ``cwd``, returned once its plaintext is
    being written in the staging dir under ``tmp`` (so that a signal hits it mid-run)."""
    proc = subprocess.Popen([str(MMOPS), "backup", "--repo", str(repo), "--encrypt-to",
                             age_recipient], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not [p for p in tmp.glob("mmops-stage-*/*") if _plain(p)]:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the backup ended (or never staged) before the signal")
        time.sleep(0.002)
    return proc


def test_encrypted_backup_to_a_repository_stages_plaintext_only_in_a_private_tmpdir(
    big_db: dict[str, str], recipient, tmp_path: Path
) -> None:
    _key, age_recipient = recipient
    cwd, tmp, repo = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "repo"
    env = big_db
    sampler = Sampler(cwd, tmp, repo)
    sampler.start()
    res = run("backup", "--repo", str(repo), "--encrypt-to", age_recipient, env=env, cwd=cwd)
    seen = sampler.stop()
    assert res.returncode == 0, res.stderr
    staged = {p for p in seen if _plain(p)}
    assert staged, "the sampler never saw the backup being written"
    for path in staged:  # plaintext only ever inside $TMPDIR/mmops-stage-*/
        assert path.parent.parent == tmp and path.parent.name.startswith("mmops-stage-"), path
    assert sampler.staging_modes == {0o700}
    assert not [p for p in seen if p.is_relative_to(cwd)]  # nothing at all in the cwd
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []  # removed on success
    stored = [p.name for p in repo.iterdir() if not p.name.startswith(".")]
    assert len(stored) == 2 and any(n.endswith(".mmops.age") for n in stored)


def test_a_killed_encrypted_backup_leaves_plaintext_only_in_tmpdir_until_the_next_command(
    big_db: dict[str, str], recipient, tmp_path: Path
) -> None:
    cwd, tmp, repo = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "repo"
    proc = _staged_backup(big_db, recipient[1], cwd, tmp, repo)
    try:
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    left = [p for p in tmp.rglob("*") if p.is_file()]
    assert left and all(p.parent.name.startswith("mmops-stage-") for p in left)
    assert {(p.parent.stat().st_mode & 0o777) for p in left} == {0o700}
    assert list(cwd.iterdir()) == []
    assert not [p for p in repo.rglob("*") if _plain(p)] if repo.exists() else True

    # the next command, whatever it is and wherever it starts, removes the leftover
    res = run("repo", "--repo", str(repo), "list", env=environ(TMPDIR=str(tmp)), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_mid_backup_removes_the_staged_plaintext(
    big_db: dict[str, str], recipient, tmp_path: Path, sig: signal.Signals
) -> None:
    cwd, tmp, repo = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "repo"
    proc = _staged_backup(big_db, recipient[1], cwd, tmp, repo)
    try:
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert list(tmp.iterdir()) == [] and list(cwd.iterdir()) == []
    assert not repo.exists() or not [p for p in repo.iterdir() if not p.name.startswith(".")]


@pytest.mark.storage
@pytest.mark.parametrize("encrypted", [True, False])
def test_a_failed_upload_keeps_the_verified_backup_and_says_where(
    pg15, make_db, recipient, seaweed, s3_bucket: str, tmp_path: Path, encrypted: bool
) -> None:
    key, age_recipient = recipient
    url = make_db(pg15)
    pg15.psql(SMALL, url.database)
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    for d in (cwd, tmp):
        d.mkdir()

    def rule(method: str, path: str) -> int | None:  # the backup's own upload is refused
        name = path.split("?", 1)[0]
        return 403 if method == "PUT" and name.endswith((".mmops", ".mmops.age")) else None

    with FaultProxy(seaweed.endpoint, rule) as proxy:
        env = environ(url, TMPDIR=str(tmp), **seaweed.environ(AWS_ENDPOINT_URL=proxy.url))
        extra = ["--encrypt-to", age_recipient] if encrypted else []
        res = run("backup", "--repo", f"s3://{s3_bucket}/mm", *extra, env=env, cwd=cwd)
    assert res.returncode == 12, res.stderr
    kept = [p for p in cwd.iterdir() if not p.name.endswith(".meta.json")]
    assert len(kept) == 1 and f"kept at {kept[0]}" in res.stderr, res.stderr
    assert kept[0].name.endswith(".mmops.age" if encrypted else ".mmops")
    assert kept[0].stat().st_mode & 0o777 == 0o600
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert list(tmp.iterdir()) == []  # no plaintext left in the staging dir
    if encrypted:
        plain = tmp_path / "plain.mmops"
        subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(kept[0])],
                       check=True)
        verify_archive(plain)
    else:
        verify_archive(kept[0])
    # it counts as a verified backup where it is kept
    listed = run("repo", "--repo", str(cwd), "list", "--json", env=environ(), cwd=tmp_path)
    assert [b["verified"] for b in json.loads(listed.stdout)["backups"]] == [True]


@pytest.mark.parametrize("where", ["dir", "s3"])
def test_two_backups_of_one_database_in_the_same_second_both_succeed(
    pg15, make_db, tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    url = make_db(pg15)
    pg15.psql(SMALL, url.database)
    env = environ(url, TMPDIR=str(tmp_path))
    out = tmp_path / "out"
    args = ["backup", "-o", f"{out}/"]  # a directory: the name is chosen
    if where == "s3":
        seaweed = request.getfixturevalue("seaweed")
        env.update(seaweed.environ())
        args = ["backup", "--repo", f"s3://{seaweed.new_bucket()}/mm"]
    same_second = False
    for _attempt in range(5):  # until both start within one second
        procs = [subprocess.Popen([str(MMOPS), *args], env=env, cwd=tmp_path, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
        for rc, _out, err in results:
            assert rc == 0, err
        names = [o.strip().rsplit("/", 1)[-1] for _rc, o, _e in results]
        assert names[0] != names[1]
        stamps = [n.rsplit("-", 1)[-1][:15] for n in names]
        if stamps[0] == stamps[1]:
            same_second = True
            break
        time.sleep(0.2)
    assert same_second, names
    if where == "dir":
        for name in names:
            verify_archive(out / name)


@pytest.mark.storage
def test_agent_mode_keeps_a_backup_whose_upload_failed_encrypted_on_the_server(
    provisioned, seaweed, s3_bucket: str, recipient, tmp_path: Path
) -> None:
    key, age_recipient = recipient

    def rule(method: str, path: str) -> int | None:  # the backup's own upload is refused
        name = path.split("?", 1)[0]
        return 403 if method == "PUT" and name.endswith(".mmops.age") else None

    unsent = provisioned.ops_dir / "unsent"
    before = set(unsent.iterdir()) if unsent.is_dir() else set()
    with FaultProxy(seaweed.endpoint, rule) as proxy:
        res = provisioned.make("db-backup-ops", BACKUP_DIR=str(tmp_path / "backups"),
                               REPO=f"s3://{s3_bucket}/app", ENCRYPT_TO=age_recipient,
                               **seaweed.environ(AWS_ENDPOINT_URL=proxy.url))
    assert res.returncode != 0
    kept = [p for p in set(unsent.iterdir()) - before if p.name.endswith(".mmops.age")]
    assert len(kept) == 1 and f"kept at {kept[0]}" in res.stderr, res.stderr
    assert kept[0].stat().st_mode & 0o777 == 0o600 and unsent.stat().st_mode & 0o777 == 0o700
    assert provisioned.leftover_tmp() == []  # no plaintext staging copy left on the server
    plain = tmp_path / "plain.mmops"
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(kept[0])], check=True)
    verify_archive(plain)
