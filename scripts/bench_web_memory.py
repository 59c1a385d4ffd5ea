#!/usr/bin/env python3
"""Peak RSS of `mmops web` while a large backup is downloaded and a large file uploaded.

    .venv/bin/python scripts/bench_web_memory.py --size-mb 1024

Starts the real `mmops web` on 127.0.0.1 (a throwaway password hash, a backup dir in a temp
dir, a DATABASE_URL that points nowhere: neither transfer needs the database), puts a SIZE
file in the backup dir under a backup's name, signs in, downloads it, uploads it, and reports
the server's VmHWM (peak resident memory) before and after each transfer.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    password = os.urandom(12).hex()
    with tempfile.TemporaryDirectory(prefix="mmops-web-bench-") as tmp:
        base = Path(tmp)
        backups = base / "backups"
        backups.mkdir(mode=0o700)
        big = backups / "bench-20260101T000000Z.mmops"
        with big.open("wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(args.size_mb):
                fh.write(block)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": "postgresql://bench@127.0.0.1:1/bench",
               "MMOPS_WEB_PASSWORD_HASH": hash_password(password), "TMPDIR": str(base)}
        proc = subprocess.Popen([str(MMOPS), "web", "--bind", f"127.0.0.1:{port}",
                                 "--backup-dir", str(backups)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            with httpx.Client(base_url=url, timeout=600) as client:
                page = client.get("/signin").text
                token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
                page = client.post("/signin", data={"password": password, "csrf_token": token},
                                   follow_redirects=True).text
                token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
                start = peak_rss_mb(proc.pid)
                print(f"after sign-in:  peak RSS {start:7.1f} MB")
                received = 0
                with client.stream("GET", f"/backups/backups/{big.name}") as r:
                    for chunk in r.iter_bytes():
                        received += len(chunk)
                after_download = peak_rss_mb(proc.pid)
                print(f"download {received >> 20} MB: peak RSS {after_download:7.1f} MB "
                      f"(+{after_download - start:.1f})")
                with big.open("rb") as fh:
                    r = client.post("/restore/upload", data={"csrf_token": token},
                                    files={"backup": ("upload.mmops", fh)})
                after_upload = peak_rss_mb(proc.pid)
                print(f"upload {args.size_mb} MB (answer {r.status_code}): peak RSS "
                      f"{after_upload:7.1f} MB (+{after_upload - start:.1f})")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
