"""deploy/github/database-test-restore.yml: the scheduled test restore of an encrypted
repository runs where the identity is (GitHub Actions, AGE_IDENTITY from a secret), never on
the server. Valid against GitHub's workflow schema (offline); its `run:` steps, run in order
with GitHub's step conditions, restore the newest encrypted backup in S3 (SeaweedFS) into a
throwaway PostgreSQL and prove it, tell NOTIFY (a real receiver on 127.0.0.1) how it went, and
remove the identity — and with the wrong identity the run fails and NOTIFY hears that."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.notify.receiver import Receiver
from tests.remote_sandbox import MMOPS, Remote

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "deploy" / "github" / "database-test-restore.yml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
TOKEN = "N0tifyT0ken5ecretForCI42"


def _load() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def test_the_workflow_is_valid_against_githubs_workflow_schema() -> None:
    res = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows",
                          str(WORKFLOW)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_weekly_on_sunday_after_the_backup_on_demand_and_pipefail() -> None:
    wf = _load()
    assert wf["on"]["schedule"] == [{"cron": "0 4 * * 0"}] and "workflow_dispatch" in wf["on"]
    assert wf["defaults"]["run"]["shell"] == "bash"  # GitHub's bash: -eo pipefail
    steps = wf["jobs"]["test-restore"]["steps"]
    assert not any("${{" in s.get("run", "") for s in steps)  # expressions only in env maps
    identity_step = next(s for s in steps if "AGE_IDENTITY_KEY" in s.get("env", {}))
    assert identity_step["env"]["AGE_IDENTITY_KEY"] == "${{ secrets.AGE_IDENTITY }}"
    assert steps[-1]["if"] == "${{ always() }}" and "rm -rf" in steps[-1]["run"]


_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def _value(expr: str, ctx: dict[str, dict[str, str]]) -> str:
    m = re.fullmatch(r"(\w+)\.(\w+)(?:\s*\|\|\s*'([^']*)')?", expr)
    if m is None:
        raise AssertionError(f"expression the test does not know: {expr}")
    return ctx[m.group(1)].get(m.group(2), "") or (m.group(3) or "")


def _runs(step: dict, failed: bool) -> bool:
    """GitHub's step conditions: success() unless said otherwise."""
    cond = str(step.get("if", "success()")).strip()
    cond = cond.removeprefix("${{").removesuffix("}}").strip()
    return {"always()": True, "failure()": failed, "success()": not failed}[cond]


def _shell() -> list[str]:
    """GitHub's bash: `shell: bash` is bash --noprofile --norc -eo pipefail {0}; with no shell
    given it is bash -e {0}, without pipefail (a failure before `| tee` would pass)."""
    shell = _load().get("defaults", {}).get("run", {}).get("shell")
    return (["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"] if shell == "bash"
            else ["bash", "-e", "-c"])


def _run_steps(steps: list[dict], ctx: dict[str, dict[str, str]], base_env: dict[str, str],
               job_env: dict[str, str], github_path: Path, *, skip: set[str]
               ) -> tuple[bool, list[str]]:
    failed, outputs = False, []
    for step in steps:
        if "uses" in step or step.get("name") in skip or not _runs(step, failed):
            continue
        ctx["job"]["status"] = "failure" if failed else "success"
        extra = [p for p in github_path.read_text().splitlines() if p]
        env = {**base_env, **job_env,
               **{k: _EXPR.sub(lambda m: _value(m.group(1), ctx), str(v))
                  for k, v in step.get("env", {}).items()}}
        env["PATH"] = ":".join([*reversed(extra), env["PATH"]])
        res = subprocess.run([*_shell(), step["run"]], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=900)
        outputs.append(f"## {step.get('name')} (exit {res.returncode})\n{res.stdout}{res.stderr}")
        failed = failed or res.returncode != 0
    return failed, outputs


@pytest.mark.sshd
@pytest.mark.storage
@pytest.mark.slow
def test_the_run_steps_test_restore_the_newest_encrypted_backup_and_notify(
    remote: Remote, seaweed, s3_bucket: str, tmp_path: Path,
) -> None:
    key = tmp_path / "age.txt"
    recipient = subprocess.run([MMOPS, "key", "generate", "-o", str(key)], capture_output=True,
                               text=True, check=True).stdout.strip()
    storage = seaweed.environ()
    repo = f"s3://{s3_bucket}/weekly"
    backup = subprocess.run(
        [MMOPS, "tunnel", "backup", "--repo", repo, "--encrypt-to", recipient,
         "--backup-dir", str(tmp_path / "local")],
        env=remote.cmd_env(**storage), capture_output=True, text=True, timeout=600,
        cwd=str(remote.work))
    assert backup.returncode == 0, backup.stdout + backup.stderr

    receiver = Receiver()
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    github_path = tmp_path / "github_path"
    github_path.write_text("")
    summary = tmp_path / "summary.md"
    ctx: dict[str, dict[str, str]] = {
        "secrets": {"AGE_IDENTITY": key.read_text(),
                    "AWS_ACCESS_KEY_ID": storage["AWS_ACCESS_KEY_ID"],
                    "AWS_SECRET_ACCESS_KEY": storage["AWS_SECRET_ACCESS_KEY"],
                    "NOTIFY": receiver.url(f"/ci/{TOKEN}")},
        "vars": {"REPO": repo, "DATABASE": remote.state.database,
                 "AWS_REGION": storage.get("AWS_REGION", "us-east-1"),
                 "AWS_ENDPOINT_URL": storage["AWS_ENDPOINT_URL"]},
        "runner": {"temp": str(runner_temp)},
        "github": {"run_id": "7", "server_url": "https://github.example",
                   "repository": "acme/markdown-manager"},
        "job": {},
    }
    base_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                "RUNNER_TEMP": str(runner_temp), "GITHUB_PATH": str(github_path),
                "GITHUB_STEP_SUMMARY": str(summary), "LANG": "C.UTF-8"}
    job = _load()["jobs"]["test-restore"]
    job_env = {k: _EXPR.sub(lambda m: _value(m.group(1), ctx), v)
               for k, v in job.get("env", {}).items()}
    try:
        failed, outputs = _run_steps(job["steps"], ctx, base_env, job_env, github_path,
                                     skip=set())
        text = "\n".join(outputs)
        assert not failed, text
        assert "Test restore OK:" in text and "identical" in summary.read_text()
        (got,) = receiver.wait_for(1)
        assert got.path == f"/ci/{TOKEN}"
        assert got.body["event"] == "test-restore" and got.body["result"] == "ok"
        assert got.body["host"] == "github-actions"
        assert got.body["message"].startswith("Test restore OK: latest in s3://")
        assert not (runner_temp / "test-restore").exists()  # the identity is gone

        # the wrong identity: the restore step fails, NOTIFY hears it, the identity is removed
        other = tmp_path / "other.txt"
        subprocess.run([MMOPS, "key", "generate", "-o", str(other)], capture_output=True,
                       check=True)
        ctx["secrets"]["AGE_IDENTITY"] = other.read_text()
        failed, more = _run_steps(job["steps"], ctx, base_env, job_env, github_path,
                                  skip={"Install mmops and PostgreSQL 18 for the throwaway "
                                        "server"})
        assert failed
        got = receiver.wait_for(2)[-1]
        assert got.body["result"] == "failed" and got.body["ok"] is False
        assert got.body["message"] == ("The test restore in GitHub Actions failed: "
                                       "https://github.example/acme/markdown-manager/actions/"
                                       "runs/7")
        assert not (runner_temp / "test-restore").exists()
    finally:
        receiver.close()
    everything = "\n".join(outputs + more) + summary.read_text()
    for secret in (TOKEN, storage["AWS_SECRET_ACCESS_KEY"],
                   key.read_text().strip().splitlines()[-1]):
        assert secret not in everything
