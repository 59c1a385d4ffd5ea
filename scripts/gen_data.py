"""Fill a PostgreSQL database with markdown-manager-like data of a given logical size.

Developer tool used by ``scripts/bench`` (and usable on its own)::

    DATABASE_URL=postgresql://user:pw@host/db .venv/bin/python scripts/gen_data.py --size 1GB

The size is the *logical* data volume: the bytes COPY would stream for all tables (what a logical
backup has to read, compress and write). On disk PostgreSQL TOAST-compresses the ~2.5 KB documents,
so ``pg_database_size`` is usually smaller; both are reported.

The schema is the app's own: ``ops.sandbox.app.migrate`` runs the alembic migrations (users,
documents, custom_dictionaries, document_recovery, alembic_version). Keys, foreign keys and
indexes are dropped for the load and recreated after it, as a restore would. Volume: documents
~88 % (markdown of ~2.5 KB on average, log-normal spread), document_recovery ~10 % (edited
copies of existing documents, made server-side), the rest users and dictionaries.

The text is generated client-side with a seeded RNG from a Zipf-weighted vocabulary (real English
words plus a long tail of synthetic ones), headings, lists, code blocks, links with random hashes
and numbers, so compressors see text-like entropy rather than a repeated constant. Two worker
processes generate and COPY documents in parallel (the machine has two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ops.dburl import DbUrl, parse_database_url  # noqa: E402

_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2,
          "GIB": 1024**3}


def parse_size(text: str) -> int:
    """``200MB``, ``1GB``, ``2GB``, ``20MB``, ``1.5GB``, ``512MiB`` or a plain byte count."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 200MB, 1GB)")
    unit = (m.group(2) or "B").upper()
    if unit in {"M", "G", "K"}:
        unit += "B"
    if unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"unknown size unit in {text!r}")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1_000_000:
        raise argparse.ArgumentTypeError("size must be at least 1MB")
    return value


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

_COMMON = """the of and to a in is that for it as with was on be by this are or from at which
an have not but they his has one you can all their been were more we when will there would if so
what about out up them into its some could time these two may then do first any my now such like
our over man me even most made after also did many before must through back years where much your
way well down should because each just those people how too little state good very make world
still own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three document
note page section draft meeting project team release deploy server database backup restore user
account settings editor preview markdown table list link image code block heading summary review
task todo done pending issue fix bug feature test build version branch commit merge config file
folder path share token sync status update create delete rename move copy export import search
index query schema migration column row value number date report plan idea question answer
""".split()

_SYLLABLES = ("ka ri to ne sa mu lo pe vi da zo ter mon ash ing el or an ex pro con ver tion al "
              "ent ist ure ble ment ous ive per com dis").split()


def _vocabulary(rng: random.Random, size: int = 20000) -> tuple[list[str], list[float]]:
    words = list(dict.fromkeys(_COMMON))
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    # Zipf-like weights: rank r has weight 1/r^1.05, so the common words dominate.
    cum: list[float] = []
    total = 0.0
    for r in range(1, len(words) + 1):
        total += 1.0 / r**1.05
        cum.append(total)
    return words, cum


_PHRASE_BITS = 21
_PHRASE_MASK = (1 << _PHRASE_BITS) - 1
_PHRASES: list[str] = []
_ENDS = ".....?!:"
_MARKS = ("-", "*", "1.", "- [ ]", "- [x]")
_LANGS = ("python", "sql", "bash", "js", "")


def _phrases() -> list[str]:
    """2**21 two-word phrases drawn once from the Zipf vocabulary (shared by forked workers).

    Drawing words one by one with weights costs ~0.3 us each, which made generation slower than
    the load; picking uniformly among pre-drawn phrases is ~10x cheaper. Two words (~14 bytes) is
    too short a repeat for a compressor to profit from the reuse across documents.
    """
    if not _PHRASES:
        rng = random.Random(4242)
        words, cum = _vocabulary(rng)
        flat = rng.choices(words, cum_weights=cum, k=2 << _PHRASE_BITS)
        _PHRASES.extend(f"{a} {b}" for a, b in zip(flat[0::2], flat[1::2], strict=True))
    return _PHRASES


class MarkdownFaker:
    """Deterministic markdown documents of a log-normal length around ``mean_len`` characters."""

    def __init__(self, seed: int, mean_len: int = 2500) -> None:
        self.rng = random.Random(seed)
        self.phrases = _phrases()
        self.mean_len = mean_len
        sigma = 0.6
        self._mu = math.log(mean_len) - sigma * sigma / 2
        self._sigma = sigma

    def _words(self, n: int) -> list[str]:
        """``n`` phrases of two words each (uniform over the pool: 4 random bytes per pick)."""
        idx = memoryview(self.rng.randbytes(4 * n)).cast("I")
        p = self.phrases
        return [p[i & _PHRASE_MASK] for i in idx]

    def _sentence(self, words: list[str]) -> str:
        s = " ".join(words)
        return s[:1].upper() + s[1:] + _ENDS[int(self.rng.random() * len(_ENDS))]

    def title(self) -> str:
        return " ".join(w.title() for w in self._words(1 + int(self.rng.random() * 3)))

    def document(self) -> str:
        """One document in COPY text format (newlines already escaped as backslash-n)."""
        rng = self.rng
        r = rng.random

        def ri(lo: int, hi: int) -> int:  # randint without randrange's overhead
            return lo + int(r() * (hi - lo + 1))

        target = int(min(max(rng.lognormvariate(self._mu, self._sigma), 200), 40000))
        out: list[str] = [f"# {self.title()}", ""]
        size = 0
        pool = self._words(max(200, target // 12))  # ~14 chars per phrase incl. space
        pos = 0
        while size < target:
            kind = r()
            if pos + 80 > len(pool):
                pool = self._words(max(200, target // 12))
                pos = 0
            if kind < 0.55:
                sents = []
                for _ in range(ri(2, 6)):
                    n = ri(3, 9)
                    sents.append(self._sentence(pool[pos:pos + n]))
                    pos += n
                block = " ".join(sents)
            elif kind < 0.70:
                items = []
                for _ in range(ri(2, 6)):
                    n = ri(2, 5)
                    items.append(f"{_MARKS[int(r() * 5)]} {' '.join(pool[pos:pos + n])}")
                    pos += n
                block = "\\n".join(items)
            elif kind < 0.80:
                block = f"## {' '.join(pool[pos:pos + 2]).capitalize()}"
                pos += 2
            elif kind < 0.88:
                lines = [f"```{_LANGS[int(r() * 5)]}"]
                for _ in range(ri(2, 7)):
                    a, b = pool[pos].split(" ")
                    lines.append(f"{a}_{b} = {a if r() < 0.5 else b}({ri(0, 9999)}, "
                                 f"'{pool[pos + 1]}')")
                    pos += 2
                lines.append("```")
                block = "\\n".join(lines)
            elif kind < 0.95:
                block = (
                    f"See [{pool[pos]}](https://docs.example.org/"
                    f"{pool[pos + 1].replace(' ', '-')}/{rng.getrandbits(48):012x}) and "
                    f"![img](/img/{rng.getrandbits(32):08x}.png)."
                )
                pos += 2
            else:
                rows = [f"| {' | '.join(pool[pos:pos + 3])} |", "|---|---|---|"]
                pos += 3
                for _ in range(ri(2, 5)):
                    rows.append(f"| {ri(0, 10**6)} | {r() * 1000:.2f} | {pool[pos]} |")
                    pos += 1
                block = "\\n".join(rows)
            out.append(block)
            out.append("")
            size += len(block) + 2
        return "\\n".join(out)


# --------------------------------------------------------------------------------------------
# Load into the app's schema (ops.sandbox.app's alembic migrations)
# --------------------------------------------------------------------------------------------

# Approximate bytes per COPY row, used to turn a size into row counts.
_DOC_OVERHEAD = 230
_DOC_SHARE, _RECOVERY_SHARE = 0.88, 0.10
_DOCS_PER_USER = 50
_CATEGORIES = ("General", "Work", "Personal", "Research", "Recipes", "Travel", "Notes", "Drafts")
_TAGS = ("todo", "idea", "meeting", "draft", "reference", "python", "postgres", "backup",
         "travel", "recipe", "weekly", "archive", "café", "読書")
_REASONS = ("autosave", "autosave", "autosave", "crash", "conflict", "manual")

USER_COLUMNS = ("id", "email", "display_name", "password_hash", "is_active", "is_verified",
                "settings", "created_at", "updated_at", "last_login_at")
DOCUMENT_COLUMNS = ("id", "user_id", "title", "content", "category", "is_public", "tags",
                    "metadata", "created_at", "updated_at", "word_count")
DICTIONARY_COLUMNS = ("id", "user_id", "word", "created_at")


@dataclass
class Plan:
    size: int
    n_docs: int
    n_users: int
    n_recovery: int
    seed: int
    mean_len: int = 2500


def make_plan(size: int, seed: int = 1) -> Plan:
    n_docs = max(20, int(size * _DOC_SHARE / (2500 + _DOC_OVERHEAD)))
    n_users = max(2, n_docs // _DOCS_PER_USER)
    n_recovery = max(1, int(size * _RECOVERY_SHARE / (2500 + _DOC_OVERHEAD)))
    return Plan(size=size, n_docs=n_docs, n_users=n_users, n_recovery=n_recovery, seed=seed)


def _ts(rng: random.Random) -> str:
    r = rng.random
    return (f"202{1 + int(r() * 5)}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d} "
            f"{int(r() * 24):02d}:{int(r() * 60):02d}:{int(r() * 60):02d}"
            f".{int(r() * 1e6):06d}+00")


def document_rows(plan: Plan, start: int, stop: int) -> Iterator[bytes]:
    """COPY text rows for documents ``start..stop-1`` (ids are 1-based), in ~1 MB chunks."""
    fk = MarkdownFaker(plan.seed * 1_000_003 + start, plan.mean_len)
    rng = fk.rng
    r = rng.random
    buf: list[str] = []
    buf_len = 0
    for doc_id in range(start, stop):
        user_id = 1 + (doc_id - 1) % plan.n_users
        content = fk.document()
        words = content.count(" ") + content.count("\\n") + 1
        tags = ",".join(dict.fromkeys(_TAGS[int(r() * len(_TAGS))] for _ in range(int(r() * 4))))
        meta = (f'{{"source": "{"web" if r() < 0.8 else "github"}", "revision": {int(r() * 90)}, '
                f'"pinned": {"true" if r() < 0.1 else "false"}}}')
        row = (f"{doc_id}\t{user_id}\t{fk.title()} {doc_id}\t{content}\t"
               f"{_CATEGORIES[int(r() * len(_CATEGORIES))]}\t{'t' if r() < 0.05 else 'f'}\t"
               f"{{{tags}}}\t{meta}\t{_ts(rng)}\t{_ts(rng)}\t{words}\n")
        buf.append(row)
        buf_len += len(row)
        if buf_len >= 1 << 20:
            yield "".join(buf).encode()
            buf, buf_len = [], 0
    if buf:
        yield "".join(buf).encode()


def user_rows(plan: Plan) -> Iterator[bytes]:
    fk = MarkdownFaker(plan.seed * 7 + 3)
    rng = fk.rng
    r = rng.random
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    buf: list[str] = []
    for uid in range(1, plan.n_users + 1):
        first, last = (w.capitalize() for w in fk._words(1)[0].split(" "))
        pw = "$2b$12$" + "".join(alphabet[int(r() * 64)] for _ in range(53))
        settings = (f'{{"theme": "{"dark" if r() < 0.4 else "light"}", "editor": '
                    f'{{"fontSize": {12 + int(r() * 6)}, "autosave": '
                    f'{"true" if r() < 0.9 else "false"}}}}}')
        last_login = _ts(rng) if r() < 0.8 else "\\N"
        buf.append(
            f"{uid}\tuser{uid}.{first.lower()}@example.com\t{first} {last}\t{pw}\t"
            f"{'t' if r() < 0.95 else 'f'}\t{'t' if r() < 0.9 else 'f'}\t{settings}\t"
            f"{_ts(rng)}\t{_ts(rng)}\t{last_login}\n"
        )
        if len(buf) >= 2000:
            yield "".join(buf).encode()
            buf = []
    if buf:
        yield "".join(buf).encode()


def dictionary_rows(plan: Plan) -> Iterator[bytes]:
    fk = MarkdownFaker(plan.seed * 11 + 5)
    rng = fk.rng
    buf: list[str] = []
    did = 0
    for uid in range(1, plan.n_users + 1):
        if rng.random() > 0.4:
            continue
        for w in dict.fromkeys(p.split(" ")[0] for p in fk._words(rng.randint(3, 60))):
            did += 1
            buf.append(f"{did}\t{uid}\t{w}\t{_ts(rng)}\n")
        if len(buf) >= 5000:
            yield "".join(buf).encode()
            buf = []
    if buf:
        yield "".join(buf).encode()


async def _aiter(chunks: Iterator[bytes]):  # type: ignore[no-untyped-def]
    for c in chunks:
        yield c


async def _copy(conn_kwargs: dict[str, Any], table: str, columns: tuple[str, ...],
                chunks: Iterator[bytes]) -> None:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        await conn.copy_to_table(table, source=_aiter(chunks), columns=list(columns),
                                 format="text")
    finally:
        await conn.close()


def _doc_worker(conn_kwargs: dict[str, Any], plan_d: dict[str, Any], start: int, stop: int) -> None:
    plan = Plan(**plan_d)
    asyncio.run(_copy(conn_kwargs, "documents", DOCUMENT_COLUMNS,
                      document_rows(plan, start, stop)))


# Recovery rows are edited copies of existing documents (as the app keeps them), made server-side.
RECOVERY_SQL = """
INSERT INTO document_recovery (id, document_id, user_id, content, reason, recovered_at)
SELECT g, d.id, d.user_id,
       CASE WHEN g % 2 = 0 THEN d.content || E'\\n\\n<!-- recovered ' || md5(g::text) || ' -->'
            ELSE left(d.content, greatest(100, length(d.content) - (g % 500))) END,
       (ARRAY[$3::text[]])[1][1 + g % cardinality($3::text[])],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds'
FROM generate_series(1, $1::int) AS g
JOIN documents d ON d.id = 1 + ((g::bigint * 7919) % $2::int)
"""

_CONSTRAINTS_SQL = """
SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
              pg_get_constraintdef(oid)) AS create_sql,
       format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS drop_sql,
       contype = 'f' AS is_fk
FROM pg_constraint
WHERE conrelid = ANY($1::regclass[]) AND contype IN ('p', 'u', 'f', 'x')
ORDER BY contype = 'f', conrelid, conname
"""

_INDEXES_SQL = """
SELECT pg_get_indexdef(i.indexrelid) AS create_sql,
       format('DROP INDEX %s', i.indexrelid::regclass) AS drop_sql
FROM pg_index i
WHERE i.indrelid = ANY($1::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                  WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
ORDER BY i.indexrelid
"""


@dataclass
class GenResult:
    plan: dict[str, Any]
    alembic_revision: str | None
    seconds_load: float
    seconds_post: float
    seconds_total: float
    logical_bytes: int
    database_bytes: int
    rows: dict[str, int]


async def _exec(conn_kwargs: dict[str, Any], sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        if args:
            return await conn.execute(sql, *args)
        return await conn.execute(sql)
    finally:
        await conn.close()


async def _strip(conn_kwargs: dict[str, Any], tables: list[str]) -> list[str]:
    """Drop keys, foreign keys and indexes of ``tables``; return the SQL that recreates them.

    Loading first and indexing after is how pg_restore does it too; it is several times faster
    than maintaining five indexes and a foreign-key trigger per row.
    """
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        cons = await conn.fetch(_CONSTRAINTS_SQL, tables)
        idx = await conn.fetch(_INDEXES_SQL, tables)
        async with conn.transaction():
            for row in [c for c in cons if c["is_fk"]] + [c for c in cons if not c["is_fk"]]:
                await conn.execute(row["drop_sql"])
            for row in idx:
                await conn.execute(row["drop_sql"])
    finally:
        await conn.close()
    return ([c["create_sql"] for c in cons if not c["is_fk"]] + [i["create_sql"] for i in idx]
            + [c["create_sql"] for c in cons if c["is_fk"]])


async def _restore_keys(conn_kwargs: dict[str, Any], statements: list[str],
                        tables: list[str]) -> None:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for sql in statements:
            await conn.execute(sql)
        for t in tables:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {t}), false)"
            )
    finally:
        await conn.close()


async def _measure(conn_kwargs: dict[str, Any]) -> tuple[dict[str, int], int, int, str | None]:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        tables = [r["t"] for r in await conn.fetch(
            "SELECT c.oid::regclass::text AS t FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 1")]
        rows: dict[str, int] = {}
        logical = 0
        for t in tables:
            n, b = await conn.fetchrow(
                f"SELECT count(*), coalesce(sum(octet_length(t::text)), 0) FROM {t} AS t"
            )
            rows[t] = int(n)
            logical += int(b)
        dbsize = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        rev = await conn.fetchval("SELECT max(version_num) FROM alembic_version")
    finally:
        await conn.close()
    return rows, logical, dbsize, rev


async def _vacuum(conn_kwargs: dict[str, Any], table: str) -> None:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        # Sets hint bits and the visibility map now, so the first timed dump does not pay for it.
        await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
    finally:
        await conn.close()


def generate(url: DbUrl, size: int, *, seed: int = 1, jobs: int = 2,
             log: Any = None) -> GenResult:
    """Migrate an empty database to the app's head revision and fill it to ``size`` bytes."""
    from ops.sandbox.app import APP_TABLES, migrate

    plan = make_plan(size, seed)
    conn_kwargs = url.connect_kwargs()
    tables = list(APP_TABLES)
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    asyncio.run(migrate(url))
    recreate = asyncio.run(_strip(conn_kwargs, tables))
    _phrases()  # once, before forking, so the workers share it
    say(f"generating {plan.n_docs} documents, {plan.n_users} users "
        f"(~{size / 1e6:.0f} MB logical) with {jobs} workers")
    bounds = [1 + plan.n_docs * i // jobs for i in range(jobs + 1)]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_doc_worker, args=(conn_kwargs, asdict(plan), bounds[i],
                                                   bounds[i + 1])) for i in range(jobs)]
    for p in procs:
        p.start()

    async def small() -> None:
        await _copy(conn_kwargs, "users", USER_COLUMNS, user_rows(plan))
        await _copy(conn_kwargs, "custom_dictionaries", DICTIONARY_COLUMNS, dictionary_rows(plan))

    try:
        asyncio.run(small())
    finally:
        for p in procs:
            p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a document loader failed (see its traceback above)")
    asyncio.run(_exec(conn_kwargs, RECOVERY_SQL, plan.n_recovery, plan.n_docs, list(_REASONS)))
    t1 = time.perf_counter()
    say(f"loaded in {t1 - t0:.1f}s; recreating keys and indexes, vacuuming")
    asyncio.run(_restore_keys(conn_kwargs, recreate, tables))

    async def vacuum_all() -> None:
        await asyncio.gather(_vacuum(conn_kwargs, "documents"),
                             _vacuum(conn_kwargs, "document_recovery"))
        await _vacuum(conn_kwargs, "users")
        await _vacuum(conn_kwargs, "custom_dictionaries")

    asyncio.run(vacuum_all())
    asyncio.run(_exec(conn_kwargs, "CHECKPOINT"))
    t2 = time.perf_counter()
    rows, logical, dbsize, rev = asyncio.run(_measure(conn_kwargs))
    return GenResult(plan=asdict(plan), alembic_revision=rev, seconds_load=t1 - t0,
                     seconds_post=t2 - t1, seconds_total=t2 - t0, logical_bytes=logical,
                     database_bytes=dbsize, rows=rows)


def many_tables(url: DbUrl, n: int = 3000, rows: int = 3, batch: int = 100) -> float:
    """``n`` small tables ``public.t0000``... (primary key, a secondary index, ``rows`` rows),
    created ``batch`` per transaction (all in one would exhaust the server's lock table).
    Returns the seconds it took."""

    async def run() -> None:
        conn = await asyncpg.connect(**url.connect_kwargs())
        try:
            for start in range(0, n, batch):
                await conn.execute("BEGIN; " + "".join(
                    f"CREATE TABLE public.t{i:04d} (id int PRIMARY KEY, label text NOT NULL);"
                    f"CREATE INDEX t{i:04d}_label ON public.t{i:04d} (label);"
                    f"INSERT INTO public.t{i:04d} SELECT g, 'label ' || g "
                    f"FROM generate_series(1, {rows}) g;"
                    for i in range(start, min(n, start + batch))) + " COMMIT;")
            await conn.execute("VACUUM (FREEZE, ANALYZE)")
        finally:
            await conn.close()

    t0 = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1GB"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    raw = os.environ.get("DATABASE_URL")
    if not raw:
        print("set DATABASE_URL (in the environment) to an empty database", file=sys.stderr)
        return 2
    res = generate(parse_database_url(raw), args.size, seed=args.seed, jobs=args.jobs,
                   log=lambda m: print(m, file=sys.stderr))
    print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
