"""The fleet inventory (``HOSTS=inventory.toml``): hosts, each with the settings a single-host
command takes from its Make variables, read with ``tomllib`` and checked before anything runs.

    [defaults]                       # optional: for every host
    ssh_config = "~/.ssh/config"
    repo = "s3://acme-backups/markdown"

    [hosts.app1]                     # the name labels the host in the table and its log
    host = "deploy@app1.example.com" # default: the name (an ssh_config alias)
    env_file = "/srv/app1/.env"

Keys are the Make variables' names in lower case (``env_file`` for ``ENV_FILE``; ``python`` for
``REMOTE_PYTHON``). The more specific source wins: a host's table over ``[defaults]``, and both
over the command line's environment. A ``repo`` or ``backup_dir`` that does not come from the
host's own table gets ``/<name>`` appended, so two hosts never share one prefix (retention
works per database name, and two hosts' databases may share one). No key holds a secret:
storage keys and NOTIFY stay in the environment (``AWS_*``, ...), database URLs in each server's
ENV_FILE; a key that looks like one is refused with that said.

Every problem is one :class:`ConfigError` sentence naming the file, the line and the key.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has the same parser as a package
    import tomli as tomllib


@dataclass(frozen=True)
class Key:
    env: str  # the Make variable / environment variable the per-host command reads
    kind: type  # str, int, float (int accepted), bool, or list (of strings, or one string)


KEYS: dict[str, Key] = {
    "host": Key("HOST", str),
    "ssh_config": Key("SSH_CONFIG", str),
    "env_file": Key("ENV_FILE", str),
    "ops_dir": Key("OPS_DIR", str),
    "python": Key("REMOTE_PYTHON", str),
    "accept_new_host_key": Key("ACCEPT_NEW_HOST_KEY", bool),
    "offline": Key("OFFLINE", bool),
    "backup_dir": Key("BACKUP_DIR", str),
    "repo": Key("REPO", str),
    "repo_env_file": Key("REPO_ENV_FILE", str),
    "encrypt_to": Key("ENCRYPT_TO", str),
    "keep": Key("KEEP", str),
    "keep_local": Key("KEEP_LOCAL", bool),
    "lock_days": Key("LOCK_DAYS", int),
    "tables": Key("TABLES", list),
    "exclude_tables": Key("EXCLUDE_TABLES", list),
    "yield_after": Key("YIELD_AFTER", float),
    "lock_timeout": Key("LOCK_TIMEOUT", float),
    "calendar": Key("CALENDAR", str),
    "randomized_delay": Key("RANDOMIZED_DELAY", str),
    "stall": Key("STALL", float),
    "scheduler": Key("SCHEDULER", str),
    "test_restore": Key("TEST_RESTORE", str),
    "aws_profile": Key("AWS_PROFILE", str),
    "aws_region": Key("AWS_REGION", str),
    "aws_endpoint_url": Key("AWS_ENDPOINT_URL", str),
}
PER_HOST_PATHS = ("backup_dir", "repo")  # shared values get /<name> appended
DEFAULT_BACKUP_DIR = "./backups"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a string or a list of strings"}


@dataclass(frozen=True)
class FleetHost:
    """One host of the inventory: its name and the environment its command runs with."""

    name: str
    host: str
    settings: dict[str, str]  # environment variable → value (only what the inventory set)
    unset: tuple[str, ...]  # variables a `false` in the inventory removes from the environment

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in self.unset}
        env.update(self.settings)
        return env

    def setting(self, env_name: str, base: Mapping[str, str]) -> str | None:
        return self.environment(base).get(env_name) or None


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[FleetHost, ...]


def load_inventory(path: Path, environ: Mapping[str, str]) -> Inventory:
    """Read and check ``path``; ``environ`` is the command line's environment (its REPO and
    BACKUP_DIR are made per host as described above)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"HOSTS={path}: there is no such inventory file.") from None
    except IsADirectoryError:
        raise UsageError(f"HOSTS={path}: that is a directory, not an inventory file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"HOSTS={path}: cannot read the inventory ({reason}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_error(path, str(exc))) from None
    return _Checker(path, text, environ).inventory(data)


def _syntax_error(path: Path, message: str) -> str:
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if m:
        return (f"{path}:{m.group(1)}: not valid TOML: {message[: m.start()].rstrip('.')} "
                f"(column {m.group(2)}).")
    return f"{path}: not valid TOML: {message.rstrip('.')}."


class _Checker:
    def __init__(self, path: Path, text: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.environ = environ

    def fail(self, table: str | None, key: str | None, what: str) -> ConfigError:
        line = self._line(table, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {what}")

    def inventory(self, data: dict[str, Any]) -> Inventory:
        for key in data:
            if key not in ("defaults", "hosts"):
                raise self.fail(None, key, f"unknown top-level key {key!r} (an inventory has "
                                "[defaults] and [hosts.NAME] tables).")
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            raise self.fail(None, "defaults", "'defaults' must be a table ([defaults]).")
        hosts = data.get("hosts")
        if hosts is None or hosts == {}:
            raise self.fail(None, None, "no hosts: add at least one [hosts.NAME] table.")
        if not isinstance(hosts, dict) or not all(isinstance(v, dict) for v in hosts.values()):
            raise self.fail(None, "hosts", "hosts must be tables named [hosts.NAME], "
                            "one per host.")
        base = self._values("defaults", defaults)
        if "host" in base:
            raise self.fail("defaults", "host", "'host' cannot be a default: each host "
                            "names its own (or is named by its table).")
        fleet = []
        seen: dict[str, str] = {}
        for name, table in hosts.items():
            if not NAME.fullmatch(name):
                raise self.fail(f"hosts.{name}", None, f"host name {name!r} must be letters, "
                                "digits, '.', '_' or '-' (it names the host's log file).")
            if name.lower() in seen:
                raise self.fail(f"hosts.{name}", None, f"host names {seen[name.lower()]!r} and "
                                f"{name!r} differ only in case (their log files would clash).")
            seen[name.lower()] = name
            own = self._values(f"hosts.{name}", table)
            fleet.append(self._host(name, base, own))
        return Inventory(self.path, tuple(fleet))

    def _values(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            spec = KEYS.get(key.lower())
            if spec is None:
                near = difflib.get_close_matches(key.lower(), KEYS, n=1)
                secret = any(w in key.lower() for w in ("secret", "password", "token", "key_id",
                                                        "notify", "database_url"))
                hint = (" (secrets — storage keys, NOTIFY, DATABASE_URL — stay in the "
                        "environment or the server's env files, never in an inventory)"
                        if secret else f" (did you mean {near[0]!r}?)" if near else "")
                raise self.fail(table, key, f"unknown key {key!r} in [{table}]{hint}.")
            out[key.lower()] = self._typed(table, key, value, spec.kind)
        return out

    def _typed(self, table: str, key: str, value: Any, kind: type) -> Any:
        ok = (
            isinstance(value, bool) if kind is bool
            else isinstance(value, int) and not isinstance(value, bool) if kind is int
            else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
            else isinstance(value, str) or (isinstance(value, list)
                                            and all(isinstance(v, str) for v in value))
            if kind is list
            else isinstance(value, str)
        )
        if not ok:
            raise self.fail(table, key, f"{key!r} in [{table}] must be {_TYPE_WORDS[kind]}, "
                            f"not {type(value).__name__}.")
        if kind is str and not value.strip():
            raise self.fail(table, key, f"{key!r} in [{table}] is empty.")
        return value

    def _host(self, name: str, defaults: dict[str, Any], own: dict[str, Any]) -> FleetHost:
        merged = {**defaults, **own}
        merged.setdefault("host", name)
        settings: dict[str, str] = {}
        unset: list[str] = []
        for key, value in merged.items():
            env = KEYS[key].env
            if isinstance(value, bool):
                if value:
                    settings[env] = "1"
                else:
                    unset.append(env)
            elif isinstance(value, list):
                settings[env] = ",".join(value)
            else:
                settings[env] = str(value)
        for key in PER_HOST_PATHS:
            if key in own:
                continue
            env = KEYS[key].env
            shared = (settings.get(env) or self.environ.get(env)
                      or (self.environ.get("MMOPS_REPO") if key == "repo" else None)
                      or (DEFAULT_BACKUP_DIR if key == "backup_dir" else ""))
            if shared:
                settings[env] = shared.rstrip("/") + "/" + name
        return FleetHost(name=name, host=settings["HOST"], settings=settings,
                         unset=tuple(unset))

    def _line(self, table: str | None, key: str | None) -> int | None:
        """The 1-based line of ``key`` in ``[table]`` (the top level when None), else of the
        table's header. tomllib keeps no positions, so the text is scanned, best effort."""
        current: str | None = None
        header_line: int | None = None
        for i, line in enumerate(self.lines, start=1):
            m = _HEADER.match(line)
            if m:
                current = _dotted(m.group(1))
                if table is None and key is not None and current.split(".")[0] == key:
                    return i
                if current == table:
                    header_line = i
                    if key is None:
                        return i
                continue
            m = _KEY.match(line)
            if m and key is not None and current == table and _dotted(m.group(1)) == key:
                return i
        return header_line


_HEADER = re.compile(r"\s*\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"(?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)"
_KEY = re.compile(r"\s*(" + _PART + r"(?:\s*\.\s*" + _PART + r")*)\s*=")


def _dotted(name: str) -> str:
    """``hosts . "app1.example"`` → ``hosts.app1.example``: a TOML key path, quotes removed."""
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.\s]+", name)
    return ".".join(p[1:-1] if p[:1] in "\"'" else p for p in parts)
