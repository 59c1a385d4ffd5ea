"""Pulling a backup from the server over the real loopback sshd: the bytes must hash to the
server's digest, the local copy must pass the after-writing check, and nothing is kept
otherwise."""

from __future__ import annotations

import hashlib
import os
import pwd
from pathlib import Path

import pytest

from ops.errors import ArchiveError, RemoteError
from ops.sandbox.sshd import SshServer
from ops.ssh.connection import RemoteTarget, connect
from ops.ssh.transfer import pull
from tests.archive.test_archive_damage import edit_manifest_entry, swap_first_chunks
from tests.archive.test_check_written import write_sample

pytestmark = pytest.mark.sshd

NAME = "db-20240101T000000Z.mmops"


def served_backup(sshd: SshServer, tmp_path: Path, label: str, *, broken: bool = False
                  ) -> tuple[Path, str, str]:
    """A backup written here (``broken``: its manifest then disagrees with its records) and
    copied into the login user's home, owned by that user, 0600: (local file, its sha256 as
    written, the server's path)."""
    (tmp_path / "made").mkdir()
    made, digest = write_sample(tmp_path / "made" / NAME)
    if broken:
        edit_manifest_entry(made, "data/public.notes", swap_first_chunks)
        digest = hashlib.sha256(made.read_bytes()).hexdigest()
    path = sshd.home / f"pull-{label}-{NAME}"
    path.write_bytes(made.read_bytes())
    os.chmod(path, 0o600)
    pw = pwd.getpwnam(sshd.user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return made, digest, str(path)


def test_a_pulled_backup_hashing_to_the_servers_digest_is_kept_0600(
    sshd: SshServer, tmp_path: Path
) -> None:
    made, digest, remote = served_backup(sshd, tmp_path, "ok")
    with connect(RemoteTarget(sshd.alias, sshd.ssh_config)) as conn:
        got = pull(conn, remote, tmp_path / "here", expected_sha256=digest)
    assert got.read_bytes() == made.read_bytes()
    assert got.stat().st_mode & 0o777 == 0o600


def test_bytes_that_differ_from_the_servers_digest_leave_nothing(
    sshd: SshServer, tmp_path: Path
) -> None:
    _, _, remote = served_backup(sshd, tmp_path, "other")
    other = hashlib.sha256(b"another file").hexdigest()
    dest = tmp_path / "here"
    with connect(RemoteTarget(sshd.alias, sshd.ssh_config)) as conn, \
            pytest.raises(RemoteError, match="differs from the server's file"):
        pull(conn, remote, dest, expected_sha256=other)
    assert list(dest.iterdir()) == []


def test_a_broken_structure_is_refused_even_when_the_digest_matches(
    sshd: SshServer, tmp_path: Path
) -> None:
    """A server whose writer produced a consistent-looking but wrong file (digest and all):
    the local check walks the structure and keeps nothing."""
    _, digest, remote = served_backup(sshd, tmp_path, "broken", broken=True)
    dest = tmp_path / "here"
    with connect(RemoteTarget(sshd.alias, sshd.ssh_config)) as conn, \
            pytest.raises(ArchiveError, match="failed verification.*data/public.notes"):
        pull(conn, remote, dest, expected_sha256=digest)
    assert list(dest.iterdir()) == []
