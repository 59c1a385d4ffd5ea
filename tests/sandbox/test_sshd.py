"""The sandbox sshd is a real OpenSSH server: key login, strict host keys, SFTP, tidy stop."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from ops.errors import ConfigError
from ops.sandbox.sshd import SshServer, fingerprint_sha256, pid_alive, unique_login_user

pytestmark = pytest.mark.sshd


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]


def test_ssh_login_runs_command_as_login_user(sshd: SshServer) -> None:
    res = _run(sshd.ssh_argv("id", "-un"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == sshd.user
    if os.geteuid() == 0:
        assert sshd.user != "root"
        assert pwd.getpwnam(sshd.user).pw_passwd in {"*", "x"}


def test_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    res = _run(sshd.ssh_argv("true", options=["-o", f"UserKnownHostsFile={empty}"]))
    assert res.returncode == 255
    assert "Host key verification failed" in res.stderr


def test_wrong_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {other.with_suffix('.pub').read_text()}")
    res = _run(sshd.ssh_argv("true", options=["-o", f"UserKnownHostsFile={kh}"]))
    assert res.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in res.stderr


def test_unknown_client_key_cannot_log_in(sshd: SshServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    # Same client settings, but a key the server has never seen.
    cfg = tmp_path / "cfg"
    cfg.write_text(
        sshd.ssh_config.read_text().replace(str(sshd.client_key), str(stranger))
    )
    res = _run(["ssh", "-F", str(cfg), sshd.alias, "true"])
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr


def test_sftp_put_and_get(sshd: SshServer, tmp_path: Path) -> None:
    src = tmp_path / "up.bin"
    payload = os.urandom(200_000)
    src.write_bytes(payload)
    back = tmp_path / "down.bin"
    batch = tmp_path / "batch"
    batch.write_text(f"put {src} sftp-test.bin\nget sftp-test.bin {back}\nrm sftp-test.bin\n")
    res = _run(sshd.sftp_argv(batch))
    assert res.returncode == 0, res.stderr
    assert back.read_bytes() == payload


def test_tcp_forwarding_is_allowed(sshd: SshServer) -> None:
    # -W connects stdin/stdout to a TCP port through the server: the tunnel mode's mechanism.
    res = _run(sshd.ssh_argv(options=["-W", f"127.0.0.1:{sshd.port}"]), input="")
    assert res.stdout.startswith("SSH-2.0-"), res.stderr


def test_client_files_are_private_and_consistent(sshd: SshServer) -> None:
    for path in (sshd.client_key, sshd.known_hosts, sshd.ssh_config, sshd.sshd_config,
                 sshd.host_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(sshd.state_dir.stat().st_mode) == 0o700
    assert sshd.known_hosts.read_text().split() == [
        f"[127.0.0.1]:{sshd.port}", *sshd.host_public_key.split()
    ]
    assert sshd.host_key_fingerprint.startswith("SHA256:")
    out = _run(["ssh-keygen", "-l", "-f", str(sshd.host_key.with_suffix(".pub"))]).stdout
    assert sshd.host_key_fingerprint in out
    assert fingerprint_sha256(sshd.host_public_key) == sshd.host_key_fingerprint
    config = sshd.sshd_config.read_text()
    assert "UsePAM no" in config and "AcceptEnv" not in config
    assert "PasswordAuthentication no" in config


def test_write_user_file_is_owned_by_login_user(sshd: SshServer) -> None:
    path = sshd.write_user_file("probe/secret.env", "X=1\n")
    st = path.stat()
    assert st.st_uid == pwd.getpwnam(sshd.user).pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o600
    res = _run(sshd.ssh_argv("cat", "probe/secret.env"))
    assert res.stdout == "X=1\n"
    path.unlink()
    path.parent.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a login user needs root")
def test_stop_ends_sshd_and_removes_created_user(tmp_path: Path) -> None:
    server = SshServer(tmp_path / "s", login_user=unique_login_user())
    server.start()
    pid = server.pid
    assert pid is not None and server.created_user
    assert _run(server.ssh_argv("true")).returncode == 0
    server.detach()  # as `mmops sandbox start` does: stop must work from the pid file
    SshServer(tmp_path / "s", port=server.port, login_user=server.user, created_user=True).stop()
    assert not pid_alive(pid)
    with pytest.raises(KeyError):
        pwd.getpwnam(server.user)


def test_missing_sshd_binary_names_the_apt_command(tmp_path: Path) -> None:
    server = SshServer(tmp_path / "s", sshd_binary=tmp_path / "no-sshd")
    with pytest.raises(ConfigError) as err:
        server.start()
    assert "apt-get install -y openssh-server" in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root creates or adopts login users")
def test_refuses_to_adopt_an_existing_real_user(tmp_path: Path) -> None:
    real = pwd.getpwnam("postgres")
    keys = Path(real.pw_dir) / ".ssh" / "authorized_keys"
    before = keys.read_bytes() if keys.exists() else None
    with pytest.raises(ConfigError, match="not created by the sandbox"):
        SshServer(tmp_path / "s", login_user="postgres").start()
    assert (keys.read_bytes() if keys.exists() else None) == before
    assert pwd.getpwnam("postgres").pw_passwd == real.pw_passwd
