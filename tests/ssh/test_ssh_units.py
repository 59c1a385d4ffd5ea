"""SSH pieces without a server: the one quoting helper, agent argv, errors, host-key policy."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest

from ops.errors import ConfigError, HostKeyError, RemoteError
from ops.ssh.agent_channel import agent_argv, error_from_message
from ops.ssh.commands import quote_command
from ops.ssh.connection import StrictHostKeyPolicy, fingerprint


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


class _DeadChannel:
    """A channel whose connection died under it: paramiko's close() then raises EOFError from
    the packetizer's write (seen as click's bare "Aborted!" when an SSH drop raced a pull)."""

    closed = 0

    def close(self) -> None:
        type(self).closed += 1
        raise EOFError


def test_closing_a_session_on_a_dead_connection_keeps_the_error_being_reported() -> None:
    from ops.ssh.agent_channel import AgentSession

    session = AgentSession(conn=None, argv=["x"])
    session.chan = _DeadChannel()
    with pytest.raises(RemoteError, match="lost while pulling"):
        try:
            raise RemoteError("The SSH connection to the server was lost while pulling x.")
        finally:
            session.__exit__(RemoteError, None, None)  # what `with AgentSession(...)` runs
    assert _DeadChannel.closed == 1 and session.chan is None
