"""pgvector and citext, as the real app uses them, restore exactly on PostgreSQL 18.

halfvec(384) and bit(384) columns with HNSW indexes (halfvec_cosine_ops, bit_hamming_ops), an
IVFFlat index, vector and sparsevec columns, citext with a unique index and an expression index:
create, replace and data-only restores give pg_dump-identical schemas and equal data digests.
"""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path

import pytest

from ops.engine.backup import backup
from ops.engine.restore import restore
from ops.engine.results import RestoreMode
from tests.fidelity import FIXTURE, data_digest, load_fixture, schema_text

pytestmark = [pytest.mark.postgres, pytest.mark.pg18]

EXTENSIONS = FIXTURE.with_name("sharp_schema_pg18_extensions.sql")


def _app_like_db(pg18, make_db):
    url = make_db(pg18)
    load_fixture(pg18, url.database)
    load_fixture(pg18, url.database, EXTENSIONS)
    return url


def _same(a: str, b: str) -> None:
    if a != b:
        diff = "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=2))
        pytest.fail(f"schema differs after restore:\n{diff[:6000]}")


@pytest.fixture
def source(pg18, make_db, tmp_path):
    src = _app_like_db(pg18, make_db)
    path = Path(asyncio.run(backup(src, tmp_path / "vec.mmops")).path)
    return src, path


def test_pgvector_and_citext_survive_a_create_restore(pg18, make_db, source):
    src, path = source
    dst = make_db(pg18)
    asyncio.run(restore(dst, path, mode=RestoreMode.CREATE))
    _same(schema_text(pg18.bindir, src), schema_text(pg18.bindir, dst))
    assert data_digest(dst) == data_digest(src)
    indexes = pg18.psql(
        "SELECT string_agg(indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes "
        "WHERE tablename = 'document_embeddings'",
        dst.database,
    )
    assert "hnsw (embedding halfvec_cosine_ops)" in indexes
    assert "hnsw (signature bit_hamming_ops)" in indexes


def test_pgvector_and_citext_survive_a_replace_restore(pg18, make_db, source):
    src, path = source
    dst = _app_like_db(pg18, make_db)
    pg18.psql(
        "UPDATE public.document_embeddings SET embedding = array_fill(1::real, ARRAY[384]),"
        " slug = upper(slug::text) WHERE id % 2 = 0;"
        "DROP INDEX public.document_embeddings_signature_hnsw;",
        dst.database,
    )
    asyncio.run(restore(dst, path, mode=RestoreMode.REPLACE))
    _same(schema_text(pg18.bindir, src), schema_text(pg18.bindir, dst))
    assert data_digest(dst) == data_digest(src)


def test_pgvector_and_citext_survive_a_data_only_restore(pg18, make_db, source):
    src, path = source
    dst = _app_like_db(pg18, make_db)
    schema_before = schema_text(pg18.bindir, dst)
    pg18.psql(
        "DELETE FROM public.document_embeddings WHERE id % 3 = 0;"
        "UPDATE public.document_embeddings SET signature = repeat('1', 384)::bit(384);",
        dst.database,
    )
    assert data_digest(dst) != data_digest(src)
    asyncio.run(restore(dst, path, mode=RestoreMode.DATA_ONLY))
    assert data_digest(dst) == data_digest(src)
    assert schema_text(pg18.bindir, dst) == schema_before
    # the HNSW index answers from the reloaded rows; citext finds 'Doc-7' as 'doc-7'
    distance = pg18.psql(
        "SET enable_seqscan = off; SET search_path = public, \"App Data\";"
        "SELECT embedding <=> (SELECT embedding FROM "
        "public.document_embeddings WHERE slug = 'doc-7') FROM public.document_embeddings "
        "ORDER BY embedding <=> (SELECT embedding FROM public.document_embeddings "
        "WHERE slug = 'doc-7') LIMIT 1",
        dst.database,
    ).strip()
    assert float(distance) < 1e-3
