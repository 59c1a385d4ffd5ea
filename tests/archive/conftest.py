"""Helpers for the archive tests: a small, known backup file."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from ops.archive import ArchiveWriter

CHUNK = 64 << 10  # small chunks so a few hundred KiB span several of them


def text_like(size: int, seed: int = 0) -> bytes:
    """COPY-text-like rows: compressible but not trivially so."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"markdown", b"# Title", b"\\N", b"2024-01-01"]
    out = bytearray()
    row = 0
    while len(out) < size:
        fields = [str(row).encode()] + [rng.choice(words) for _ in range(5)]
        fields.append(str(rng.randrange(10**9)).encode())
        out += b"\t".join(fields) + b"\n"
        row += 1
    return bytes(out[:size])


SAMPLE = {
    "schema/pre-data": ("schema", b"CREATE TABLE public.notes (id int);\n"),
    "data/public.empty": ("table-data", b""),
    "data/public.notes": ("table-data", text_like(5 * CHUNK + 123, seed=1)),
    "schema/post-data": ("schema", b"CREATE INDEX notes_id ON public.notes (id);\n"),
}


@pytest.fixture
def make_archive(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "db-20240101T000000Z.mmops", meta: dict | None = None) -> Path:
        with ArchiveWriter(tmp_path / name, chunk_size=CHUNK) as writer:
            for member, (kind, data) in SAMPLE.items():
                writer.add_member(member, kind, data)
            return writer.commit(meta if meta is not None else {"database": "db"})

    return make


@pytest.fixture
def sample() -> dict[str, tuple[str, bytes]]:
    """The members written by ``make_archive``: name -> (kind, data)."""
    return SAMPLE


@pytest.fixture(name="text_like")
def text_like_fixture() -> Callable[..., bytes]:
    return text_like
