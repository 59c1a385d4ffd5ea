"""``mmops remote doctor``: check everything a remote backup needs and say what to fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import RemoteSettings
from ..errors import HostKeyError, OpsError
from ..package_identity import local_identity
from ..ssh.agent_channel import run_agent
from ..ssh.connection import connect, fingerprint
from .install import MIN_PYTHON, agent_matches, probe


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    host: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def _skipped(names: list[str], why: str) -> list[Check]:
    return [Check(n, False, f"not checked: {why}", "fix the check above first") for n in names]


LATER = ["python", "venv", "agent", "env file", "DATABASE_URL", "database", "free disk"]


def run_doctor(settings: RemoteSettings) -> DoctorReport:
    """Every check runs even when an earlier one fails, where that is possible."""
    checks: list[Check] = []
    target = settings.target
    try:
        with connect(target) as conn:
            checks.append(Check("ssh", True, f"logged in as {conn.user}@{conn.host}:{conn.port}"))  # type: ignore[attr-defined]
            key = conn.transport.get_remote_server_key()  # type: ignore[attr-defined]
            checks.append(Check("host key", True, f"known: {key.get_name()} {fingerprint(key)}"))
            checks.extend(_server_checks(conn, settings))
    except HostKeyError as exc:
        checks.append(Check("ssh", False, "connection refused by our host-key check"))
        checks.append(Check("host key", False, exc.message, exc.hint))
        checks.extend(_skipped(LATER, "no SSH connection"))
    except OpsError as exc:
        checks.append(Check("ssh", False, exc.message, exc.hint or "check HOST and ssh_config"))
        checks.extend(_skipped(["host key", *LATER], "no SSH connection"))
    return DoctorReport(target.host, checks)


def _server_checks(conn: Any, settings: RemoteSettings) -> list[Check]:
    checks: list[Check] = []
    try:
        facts = probe(conn, settings.python, settings.ops_dir)
    except OpsError as exc:
        return [Check("python", False, exc.message, exc.hint), *_skipped(LATER[1:], "no python")]
    py_ok = facts.version[:2] >= MIN_PYTHON
    checks.append(
        Check("python", py_ok, f"{facts.python} is {facts.version_text}",
              f"install Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} on the server")
    )
    venv_ok = facts.has_venv and facts.has_ensurepip
    checks.append(
        Check("venv", venv_ok, "venv and ensurepip available" if venv_ok else "venv missing",
              "sudo apt-get install -y python3-venv (Debian's python3-venv package)")
    )
    identity = local_identity()
    agent = facts.agent or {}
    if not facts.venv_python:
        checks.append(Check("agent", False, f"not installed in {facts.ops_dir}",
                            "run `make setup-remote-ops`"))
        return checks + _skipped(LATER[3:], "no agent")
    if agent_matches(facts, identity):
        checks.append(Check("agent", True, f"{identity.short} in {facts.ops_dir}"))
    else:
        checks.append(Check(
            "agent", False,
            f"server has {agent.get('version')} ({str(agent.get('hash'))[:12]}), local is "
            f"{identity.short}",
            "run `make setup-remote-ops` (backups re-sync it automatically)",
        ))
    try:
        result = run_agent(conn, facts.ops_dir, "doctor", "--env-file", settings.env_file)
    except OpsError as exc:
        return checks + [Check("env file", False, exc.message, exc.hint or
                               "run `make setup-remote-ops`")] + _skipped(LATER[5:], "agent failed")
    for c in result.get("checks", []):
        checks.append(Check(c["name"], bool(c["ok"]), c["detail"], c.get("fix")))
    return checks
