"""Provision the server: check python/venv, create OPS_DIR/venv, install our wheel with the lock.

The package is shipped as a wheel made on the laptop (``wheel``: built from the checkout, or
repacked from the installed package), its dependencies pinned by
``ops/requirements.lock`` (used as pip constraints). ``OPS_DIR/agent.json`` records what was
installed (version, content hash); a run whose hash already matches only verifies and is fast.
``offline`` ships a wheelhouse downloaded on the laptop for the server's Python and platform,
so the server needs no package index.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError, RemoteError
from ..package_identity import PackageIdentity, local_identity, package_dir, wheel_content_hash
from ..process import run_command
from ..ssh.agent_channel import run_agent
from ..ssh.commands import run
from .wheel import build_agent_wheel

MIN_PYTHON = (3, 10)
LOCK_NAME = "requirements.lock"

# Runs on the server with its python3: facts about python, venv and what is installed.
PROBE = r"""
import json, os, platform, sys, sysconfig
home = os.path.expanduser("~")
arg = sys.argv[1]
if arg == "~" or arg.startswith("~/"):
    ops_dir = os.path.join(home, arg[2:])
elif os.path.isabs(arg):
    ops_dir = arg
else:
    ops_dir = os.path.join(home, arg)
out = {"version": list(sys.version_info[:3]), "executable": sys.executable, "home": home,
       "ops_dir": os.path.normpath(ops_dir), "machine": platform.machine(),
       "libc": list(platform.libc_ver()), "soabi": sysconfig.get_config_var("SOABI")}
for mod in ("venv", "ensurepip"):
    try:
        __import__(mod)
        out[mod] = True
    except Exception:
        out[mod] = False
try:
    with open(os.path.join(ops_dir, "agent.json")) as fh:
        out["agent"] = json.load(fh)
except Exception:
    out["agent"] = None
venv = os.path.join(ops_dir, "venv")
out["venv_python"] = os.access(os.path.join(venv, "bin", "python"), os.X_OK) and os.path.isfile(
    os.path.join(venv, "pyvenv.cfg"))
out["venv_exists"] = os.path.lexists(venv)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ServerFacts:
    python: str
    version: tuple[int, int, int]
    home: str
    ops_dir: str
    machine: str
    libc: tuple[str, str]
    soabi: str | None
    has_venv: bool
    has_ensurepip: bool
    agent: dict[str, Any] | None
    venv_python: bool
    venv_exists: bool = False

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


@dataclass(frozen=True)
class SetupResult:
    host: str
    ops_dir: str
    python: str
    python_version: str
    identity: PackageIdentity
    action: str  # "installed" | "updated" | "verified"
    previous_hash: str | None
    offline: bool
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ops_dir": self.ops_dir,
            "python": self.python,
            "python_version": self.python_version,
            "version": self.identity.version,
            "hash": self.identity.content_hash,
            "action": self.action,
            "previous_hash": self.previous_hash,
            "offline": self.offline,
            "duration_s": self.duration_s,
        }


def probe(conn: Any, python: str, ops_dir: str) -> ServerFacts:
    """One round trip: the server's python, venv support and installed agent."""
    res = run(conn, [python, "-c", PROBE, ops_dir], check=False, what="the python3 probe")
    if res.exit_code == 127 or "not found" in res.stderr and not res.stdout:
        raise RemoteError(
            f"There is no {python} on the server.",
            hint="Install Python 3.10 or newer (Debian: sudo apt-get install -y python3 "
            "python3-venv), or name another interpreter with --python.",
        )
    if not res.ok:
        raise RemoteError(f"Probing {python} on the server failed: {res.stderr_tail(3)}")
    try:
        raw = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise RemoteError(f"{python} on the server gave an unreadable probe answer.") from exc
    return ServerFacts(
        python=python,
        version=tuple(raw["version"]),
        home=raw["home"],
        ops_dir=raw["ops_dir"],
        machine=raw["machine"],
        libc=tuple(raw["libc"]),
        soabi=raw.get("soabi"),
        has_venv=bool(raw["venv"]),
        has_ensurepip=bool(raw["ensurepip"]),
        agent=raw.get("agent"),
        venv_python=bool(raw["venv_python"]),
        venv_exists=bool(raw.get("venv_exists")),
    )


def check_python(facts: ServerFacts) -> None:
    """Raise with the fix when the server's python cannot host the agent."""
    if facts.version[:2] < MIN_PYTHON:
        raise RemoteError(
            f"The server's {facts.python} is {facts.version_text}; the agent needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer.",
            hint="Install a newer python3 on the server or name one with --python.",
        )
    if not (facts.has_venv and facts.has_ensurepip):
        major_minor = f"{facts.version[0]}.{facts.version[1]}"
        raise RemoteError(
            f"The server's {facts.python} ({facts.version_text}) lacks the venv module "
            "(venv/ensurepip), so no virtualenv can be created.",
            hint=f"On Debian/Ubuntu install Debian's python3-venv package: "
            f"sudo apt-get install -y python3-venv (or python{major_minor}-venv).",
        )


def agent_matches(facts: ServerFacts, identity: PackageIdentity) -> bool:
    """True when agent.json records exactly the local package and the venv exists."""
    agent = facts.agent or {}
    return (
        facts.venv_python
        and agent.get("hash") == identity.content_hash
        and agent.get("version") == identity.version
    )


def _run_local(argv: list[str], *, timeout: float) -> Any:
    # pip and build need the operator's environment (HOME, proxies, pip config).
    try:
        return run_command(argv, env=dict(os.environ), check=False, timeout=timeout)
    except ConfigError as exc:
        raise RemoteError(f"Preparing the agent for the server failed: {exc}") from exc


def _manylinux_platforms(machine: str, libc: tuple[str, str]) -> list[str]:
    plats = [f"linux_{machine}"]
    if libc[0] == "glibc" and libc[1]:
        major, minor = (int(x) for x in libc[1].split(".")[:2])
        plats += [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
        if (major, minor) >= (2, 17):
            plats.append(f"manylinux2014_{machine}")
        if (major, minor) >= (2, 12):
            plats.append(f"manylinux2010_{machine}")
        if (major, minor) >= (2, 5):
            plats.append(f"manylinux1_{machine}")
    return plats


def build_wheelhouse(facts: ServerFacts, lock: Path, out_dir: Path) -> list[Path]:
    """Binary wheels of every locked dependency for the server's python and platform."""
    pyver = f"{facts.version[0]}{facts.version[1]}"
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
            "--dest", str(out_dir), "--python-version", pyver, "--implementation", "cp",
            "-r", str(lock)]
    for plat in _manylinux_platforms(facts.machine, facts.libc):
        argv += ["--platform", plat]
    res = _run_local(argv, timeout=1200)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise RemoteError(f"Downloading the offline wheelhouse failed: {tail}")
    return sorted(out_dir.glob("*.whl"))


def _put(conn: Any, local: Path, remote: str) -> None:
    sftp = conn.sftp()
    sftp.put(str(local), remote)
    sftp.chmod(remote, 0o600)


def _write_remote_json(conn: Any, remote: str, data: dict[str, Any]) -> None:
    sftp = conn.sftp()
    partial = remote + ".partial"
    with sftp.open(partial, "w") as fh:
        fh.chmod(0o600)
        fh.write(json.dumps(data, indent=2) + "\n")
    sftp.posix_rename(partial, remote)


def install(conn: Any, facts: ServerFacts, *, offline: bool) -> PackageIdentity:
    """Create OPS_DIR/venv if needed and install our wheel with the locked dependencies.

    Returns the identity of what was shipped (hashed from the wheel itself, so a source tree
    edited while the wheel was built cannot make the record lie).
    """
    ops = PurePosixPath(facts.ops_dir)
    wheels_dir = str(ops / "wheels")
    run(conn, ["mkdir", "-p", str(ops / "tmp"), wheels_dir], what="creating OPS_DIR")
    run(conn, ["chmod", "700", str(ops), str(ops / "tmp"), wheels_dir], what="chmod OPS_DIR")
    if not facts.venv_python:
        # --clear: a half-made or damaged venv from an interrupted run is rebuilt from scratch.
        res = run(conn, [facts.python, "-m", "venv", "--clear", str(ops / "venv")], check=False)
        if not res.ok:
            if "ensurepip" in res.stdout + res.stderr:
                check_python(dataclasses.replace(facts, has_ensurepip=False))  # same hint
            raise RemoteError(f"Creating the venv failed: {res.stderr_tail(3)}")
    lock = package_dir() / LOCK_NAME
    if not lock.is_file():
        raise RemoteError(f"{lock} is missing.", hint="Run `make lock` and commit it.")
    remote_lock = str(ops / "wheels" / LOCK_NAME)
    run(conn, ["find", wheels_dir, "-mindepth", "1", "-delete"], what="clearing old wheels")
    pip = [str(ops / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="mmops-wheel-") as tmp:
        wheel = build_agent_wheel(Path(tmp))
        shipped = PackageIdentity(local_identity().version, wheel_content_hash(wheel))
        remote_wheel = str(ops / "wheels" / wheel.name)
        _put(conn, wheel, remote_wheel)
        _put(conn, lock, remote_lock)
        if offline:
            house = Path(tmp) / "house"
            house.mkdir()
            for w in build_wheelhouse(facts, lock, house):
                _put(conn, w, str(ops / "wheels" / w.name))
            pip += ["--no-index", "--find-links", wheels_dir]
    res = run(conn, [*pip, "--constraint", remote_lock, remote_wheel], check=False)
    if not res.ok:
        raise RemoteError(f"pip could not install the agent on the server: {res.stderr_tail(3)}")
    # Same version number, new content: replace our files (dependencies already satisfied).
    res = run(conn, [*pip, "--no-deps", "--force-reinstall", remote_wheel], check=False)
    if not res.ok:
        raise RemoteError(f"pip could not install the agent on the server: {res.stderr_tail(3)}")
    return shipped


def verify_installed(conn: Any, ops_dir: str, identity: PackageIdentity) -> dict[str, Any]:
    """Ask the installed agent for its own hash and compare it with the local package."""
    got = run_agent(conn, ops_dir, "version")
    if got.get("hash") != identity.content_hash:
        raise RemoteError(
            f"The agent installed in {ops_dir} has hash {str(got.get('hash'))[:12]}, not the "
            f"local {identity.content_hash[:12]}.",
            hint="Run `make setup-remote-ops` again.",
        )
    return got


def ensure_current(conn: Any, *, host: str, python: str, ops_dir: str) -> SetupResult:
    """Before a job: make sure the server runs exactly the local package (re-sync on drift)."""
    return setup(conn, host=host, python=python, ops_dir=ops_dir)


def setup(
    conn: Any,
    *,
    host: str,
    python: str,
    ops_dir: str,
    offline: bool = False,
    force: bool = False,
) -> SetupResult:
    """Idempotent provisioning; a second run with nothing changed only verifies."""
    started = time.monotonic()
    identity = local_identity()
    facts = probe(conn, python, ops_dir)
    check_python(facts)
    previous = (facts.agent or {}).get("hash")
    if agent_matches(facts, identity) and not force:
        try:
            verify_installed(conn, facts.ops_dir, identity)
            action = "verified"
        except RemoteError:
            action = "repaired"
    else:
        action = "installed" if not facts.venv_python or not previous else "updated"
    if action != "verified":
        identity = install(conn, facts, offline=offline)
        got = verify_installed(conn, facts.ops_dir, identity)
        _write_remote_json(
            conn,
            str(PurePosixPath(facts.ops_dir) / "agent.json"),
            {
                "version": identity.version,
                "hash": identity.content_hash,
                "python": got.get("python"),
                "base_python": facts.python,
                "offline": offline,
                "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "installed_by": os.environ.get("USER", ""),
            },
        )
    return SetupResult(
        host=host,
        ops_dir=facts.ops_dir,
        python=facts.python,
        python_version=facts.version_text,
        identity=identity,
        action=action,
        previous_hash=previous,
        offline=offline,
        duration_s=round(time.monotonic() - started, 2),
    )
