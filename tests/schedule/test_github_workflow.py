"""deploy/github/database-backup.yml: valid against GitHub's workflow schema (offline), and its
`run:` steps, run in order against the sandbox with the sandbox's values as secrets and
variables, back up through the tunnel, leave one encrypted file for the artifact, store it in
S3 (SeaweedFS) with KEEP applied, and remove the key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ops.archive import verify_archive
from tests.remote_sandbox import MMOPS, Remote

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "deploy" / "github" / "database-backup.yml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def _load() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def test_the_workflow_is_valid_against_githubs_workflow_schema() -> None:
    res = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows",
                          str(WORKFLOW)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_daily_at_two_utc_on_demand_and_a_30_day_artifact() -> None:
    wf = _load()
    assert wf["on"]["schedule"] == [{"cron": "0 2 * * *"}] and "workflow_dispatch" in wf["on"]
    assert wf["defaults"]["run"]["shell"] == "bash"  # what the test runs: -eo pipefail
    steps = wf["jobs"]["backup"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["retention-days"] == 30
    assert upload["with"]["path"].endswith("*.mmops.age")  # only ever the encrypted file
    # expressions only in env maps, never pasted into a script (no injection, no argv secret)
    assert not any("${{" in s.get("run", "") for s in steps)


_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def _evaluate(expr: str, ctx: dict[str, dict[str, str]]) -> str:
    m = re.fullmatch(r"(\w+)\.(\w+)(?:\s*\|\|\s*'([^']*)')?", expr)
    if m is not None:
        return ctx[m.group(1)].get(m.group(2), "") or (m.group(3) or "")
    m = re.fullmatch(r"(\w+)\.(\w+)\s*!=\s*''", expr)
    if m is not None:
        return "true" if ctx[m.group(1)].get(m.group(2)) else ""
    if expr == "always()":
        return "true"
    raise AssertionError(f"expression the test does not know: {expr}")


def _substitute(text: str, ctx: dict[str, dict[str, str]]) -> str:
    return _EXPR.sub(lambda m: _evaluate(m.group(1), ctx), str(text))


@pytest.mark.sshd
@pytest.mark.storage
@pytest.mark.slow
def test_the_run_steps_back_up_the_sandbox_encrypted_into_the_artifact_dir_and_s3(
    remote: Remote, seaweed, s3_bucket: str, tmp_path: Path,
) -> None:
    key = tmp_path / "age.txt"
    recipient = subprocess.run([MMOPS, "key", "generate", "-o", str(key)], capture_output=True,
                               text=True, check=True).stdout.strip()
    storage = seaweed.environ()
    state = remote.state
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    ctx = {
        "secrets": {"SSH_PRIVATE_KEY": Path(state.identity_file).read_text(),
                    "SSH_KNOWN_HOSTS": Path(state.known_hosts).read_text(),
                    "SSH_HOST": "127.0.0.1", "SSH_USER": state.login_user,
                    "AWS_ACCESS_KEY_ID": storage["AWS_ACCESS_KEY_ID"],
                    "AWS_SECRET_ACCESS_KEY": storage["AWS_SECRET_ACCESS_KEY"]},
        "vars": {"ENCRYPT_TO": recipient, "SSH_PORT": str(state.ssh_port),
                 "ENV_FILE": state.env_file, "REPO": f"s3://{s3_bucket}/gha",
                 "KEEP": "last=1", "AWS_REGION": storage.get("AWS_REGION", "us-east-1"),
                 "AWS_ENDPOINT_URL": storage["AWS_ENDPOINT_URL"]},
        "runner": {"temp": str(runner_temp)},
        "github": {"run_id": "1"},
    }
    github_path = tmp_path / "github_path"
    github_path.write_text("")
    base_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                "RUNNER_TEMP": str(runner_temp), "GITHUB_PATH": str(github_path),
                "LANG": "C.UTF-8"}
    job = _load()["jobs"]["backup"]
    job_env = {k: _substitute(v, ctx) for k, v in job.get("env", {}).items()}
    outputs = []
    for run_number in (1, 2):  # twice: KEEP=last=1 then prunes the first from S3
        # Each real run gets a new RUNNER_TEMP: the artifact dir starts empty (the venv of run 1
        # is kept on purpose, see below).
        shutil.rmtree(runner_temp / "backups", ignore_errors=True)
        for step in job["steps"]:
            if "if" in step and not _evaluate(str(step["if"]).strip("${} "), ctx):
                continue
            if run_number == 2 and step.get("name") == "Install mmops":
                # run 1 proved the install; its venv (on GITHUB_PATH) serves run 2 (~20 s)
                assert (runner_temp / "venv" / "bin" / "mmops").is_file()
                continue
            if "uses" in step:
                if step["uses"].startswith("actions/upload-artifact@"):
                    files = sorted(runner_temp.glob("backups/*.mmops.age"))
                    assert len(files) == 1, files  # if-no-files-found: error
                    artifact = tmp_path / f"artifact-{run_number}.mmops.age"
                    artifact.write_bytes(files[0].read_bytes())
                continue  # checkout: we are in the checkout; setup-python: python3 is here
            extra = [p for p in github_path.read_text().splitlines() if p]
            env = {**base_env, **job_env,
                   **{k: _substitute(v, ctx) for k, v in step.get("env", {}).items()}}
            env["PATH"] = ":".join([*reversed(extra), env["PATH"]])
            res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                  step["run"]], env=env, cwd=ROOT, capture_output=True,
                                 text=True, timeout=900)
            outputs.append(res.stdout + res.stderr)
            assert res.returncode == 0, f"{step.get('name')}: {res.stdout}{res.stderr}"
        if run_number == 1:
            subprocess.run(["sleep", "1"], check=True)  # backups are named by the second

    text = "\n".join(outputs)
    for secret in (remote.password, storage["AWS_SECRET_ACCESS_KEY"],
                   ctx["secrets"]["SSH_PRIVATE_KEY"].splitlines()[1]):
        assert secret not in text
    assert not (runner_temp / "ssh").exists() and not (runner_temp / "backups").exists()
    # the artifact opens with the identity, verifies, and is the sandbox's database
    plain = tmp_path / "plain.mmops"
    subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain),
                    str(tmp_path / "artifact-2.mmops.age")], check=True)
    assert verify_archive(plain).members > 1
    objects = seaweed.client().list_objects_v2(Bucket=s3_bucket, Prefix="gha/")
    names = sorted(o["Key"] for o in objects.get("Contents", []) if o["Key"].endswith(".age"))
    assert len(names) == 1 and names[0].startswith(f"gha/{state.database}-")  # KEEP: last=1
