"""Read DATABASE_URL from the server's env file over SSH, for the tunnel mode (memory only).

The file is read with ``cat`` (or ``sudo -n cat`` when the login user may not read it); its text
travels back on the SSH channel's stdout and is parsed in memory with python-dotenv. Nothing is
written to disk, printed or put on a command line: the remote command holds only the file's path.
"""

from __future__ import annotations

from typing import Any

from ..dburl import DbUrl, database_url_from_dotenv
from ..errors import ConfigError, RemoteError
from .commands import CommandResult, run

DEFAULT_PG_PORT = 5432


def _remote_path(env_file: str) -> str:
    # The path is quoted as one argument, so the shell would not expand "~"; SSH commands start
    # in the login user's home, where a relative path means the same thing.
    return env_file[2:] if env_file.startswith("~/") else env_file


def _cat(conn: Any, path: str, *, sudo: bool) -> CommandResult:
    # The sudo form is exactly the agent's, so one sudoers rule serves both modes.
    argv = ["sudo", "-n", "cat", "--", path] if sudo else ["env", "LC_ALL=C", "cat", "--", path]
    return run(conn, argv, check=False, what="reading the env file", timeout=30)


def read_remote_env_text(conn: Any, env_file: str) -> str:
    """The env file's text: directly, else through ``sudo -n`` when it is root-only."""
    path = _remote_path(env_file)
    res = _cat(conn, path, sudo=False)
    if res.ok:
        return res.stdout
    err = res.stderr
    if "No such file" in err:
        raise ConfigError(
            f"The env file {env_file} does not exist on the server.",
            hint="Point ENV_FILE at the file holding DATABASE_URL=... (see "
            "deploy/markdown-manager.env.example).",
        )
    if "Is a directory" in err:
        raise ConfigError(f"The env file {env_file} on the server is a directory.")
    if "Permission denied" not in err:
        raise RemoteError(f"Reading {env_file} on the server failed: {res.stderr_tail(2)}")
    res = _cat(conn, path, sudo=True)
    if res.ok:
        return res.stdout
    raise ConfigError(
        f"The env file {env_file} is not readable by the SSH login user and "
        "`sudo -n cat` was refused.",
        hint=f"Allow that user to run `sudo -n cat {env_file}` without a password, or make the "
        "file readable by it (e.g. a group with chmod 640).",
    )


def read_remote_database_url(conn: Any, env_file: str) -> DbUrl:
    """The server's DATABASE_URL, parsed; it exists only in this process's memory."""
    return database_url_from_dotenv(read_remote_env_text(conn, env_file),
                                    source=f"{env_file} on the server")


def database_address(url: DbUrl) -> tuple[str, int]:
    """``(host, port)`` of the database as the SSH server sees it (no host: its loopback).

    A unix-socket DATABASE_URL cannot be reached through a TCP forward: that is refused with
    the alternatives.
    """
    host = url.host or url.query.get("host") or "localhost"
    if host.startswith("/"):
        raise ConfigError(
            f"DATABASE_URL on the server uses the unix socket {host}; the SSH tunnel needs a "
            "TCP host.",
            hint="Use the agent mode (make db-backup-ops), or a DATABASE_URL with "
            "host localhost and a port.",
        )
    return host, url.port or DEFAULT_PG_PORT


__all__ = [
    "database_address",
    "read_remote_database_url",
    "read_remote_env_text",
]
