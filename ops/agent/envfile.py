"""The server-side env file: read it directly, or with ``sudo -n cat`` when it is root-only."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from ..dburl import DbUrl, database_url_from_dotenv
from ..errors import ConfigError
from ..process import run_command


def whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def read_env_text(path: Path) -> str:
    """The env file's text, directly or via ``sudo -n cat`` when only root may read it."""
    try:
        return path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"The env file {path} does not exist on the server.",
            hint="Create it with a DATABASE_URL=... line (see deploy/markdown-manager.env.example)"
            " or point ENV_FILE at the right file.",
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"The env file {path} on the server is a directory.") from exc
    except PermissionError:
        pass
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    try:
        res = run_command(["sudo", "-n", "cat", "--", str(path)], env=env, check=False,
                          timeout=20)
    except ConfigError as exc:
        raise ConfigError(
            f"The env file {path} is not readable by {whoami()} and sudo is not available.",
            hint=f"Make it readable by {whoami()} (e.g. a group with chmod 640).",
        ) from exc
    if res.returncode == 0:
        return res.stdout
    if "No such file" in res.stderr:
        raise ConfigError(f"The env file {path} does not exist on the server.")
    raise ConfigError(
        f"The env file {path} is not readable by {whoami()} and `sudo -n cat` was refused.",
        hint=f"Allow {whoami()} to run `sudo -n cat {path}` without a password, or make the "
        "file readable by it (e.g. a group with chmod 640).",
    )


def read_database_url(env_file: Path) -> DbUrl:
    return database_url_from_dotenv(read_env_text(env_file), source=f"{env_file} on the server")
