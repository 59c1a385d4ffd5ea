"""Fill a PostgreSQL database with markdown-manager-like data of a given logical size.

Developer tool used by ``scripts/bench`` (and usable on its own)::

    DATABASE_URL=postgresql://user:pw@127.0.0.1:5432/db .venv/bin/python scripts/gen_data.py --size 1GB

The size is the *logical* data volume: the bytes COPY would stream for all tables (what a logical
backup has to read, compress and write). On disk PostgreSQL TOAST-compresses the ~2.5 KB documents,
so ``pg_database_size`` is usually smaller; both are reported.

Shape (close to the app's models): ``users`` (with a nullable ``current_doc_id`` pointing back at
``documents``: a circular foreign key), ``documents`` (~88 % of the volume, markdown of ~2.5 KB
on average, log-normal spread), ``document_recovery`` (~10 %: edited copies of existing documents,
made server-side), ``custom_dictionaries`` and ``alembic_version``. Primary keys, unique
constraints, foreign keys and secondary indexes are added after the load, as a restore would.

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

ALEMBIC_REVISION = "b3n7c4a1d2e5"

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
# Schema (mirrors the app's alembic models; constraints and indexes come after the load)
# --------------------------------------------------------------------------------------------

PRE_DDL = """
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL);
CREATE TABLE users (
    id integer NOT NULL,
    email varchar(255) NOT NULL,
    hashed_password varchar(255),
    first_name varchar(100),
    last_name varchar(100),
    display_name varchar(100),
    bio text,
    is_active boolean NOT NULL DEFAULT true,
    is_verified boolean NOT NULL DEFAULT false,
    is_admin boolean NOT NULL DEFAULT false,
    mfa_enabled boolean NOT NULL DEFAULT false,
    totp_secret varchar(32),
    sync_preview_scroll_enabled boolean NOT NULL DEFAULT true,
    autosave_enabled boolean NOT NULL DEFAULT true,
    editor_width_percentage integer NOT NULL DEFAULT 40,
    current_doc_id integer,
    reset_token varchar(255),
    reset_token_expires timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE users_id_seq AS integer OWNED BY users.id;
ALTER TABLE users ALTER COLUMN id SET DEFAULT nextval('users_id_seq');
CREATE TABLE documents (
    id integer NOT NULL,
    name varchar(255) NOT NULL,
    content text NOT NULL DEFAULT '',
    folder_path varchar(1000) NOT NULL DEFAULT '/',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    user_id integer NOT NULL,
    share_token varchar(64),
    is_shared boolean NOT NULL DEFAULT false,
    local_sha varchar(64)
);
COMMENT ON COLUMN documents.folder_path IS 'Hierarchical folder path (e.g., ''/Work/Projects'')';
CREATE SEQUENCE documents_id_seq AS integer OWNED BY documents.id;
ALTER TABLE documents ALTER COLUMN id SET DEFAULT nextval('documents_id_seq');
CREATE TABLE custom_dictionaries (
    id integer NOT NULL,
    user_id integer NOT NULL,
    word varchar(100) NOT NULL,
    notes text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE custom_dictionaries_id_seq AS integer OWNED BY custom_dictionaries.id;
ALTER TABLE custom_dictionaries ALTER COLUMN id SET DEFAULT nextval('custom_dictionaries_id_seq');
CREATE TABLE document_recovery (
    id integer NOT NULL,
    user_id integer NOT NULL,
    document_id varchar,
    name varchar NOT NULL,
    category varchar NOT NULL,
    content text NOT NULL,
    recovered_at timestamp without time zone,
    collision boolean
);
CREATE SEQUENCE document_recovery_id_seq AS integer OWNED BY document_recovery.id;
ALTER TABLE document_recovery ALTER COLUMN id SET DEFAULT nextval('document_recovery_id_seq');
"""

POST_DDL = """
ALTER TABLE alembic_version ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);
ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id);
CREATE UNIQUE INDEX ix_users_email ON users (email);
CREATE INDEX ix_users_id ON users (id);
ALTER TABLE documents ADD CONSTRAINT documents_pkey PRIMARY KEY (id);
ALTER TABLE documents ADD CONSTRAINT uq_user_folder_name UNIQUE (user_id, folder_path, name);
ALTER TABLE documents ADD CONSTRAINT uq_user_name UNIQUE (user_id, name);
CREATE INDEX ix_documents_name ON documents (name);
CREATE INDEX ix_documents_user_id ON documents (user_id);
CREATE INDEX ix_documents_folder_path ON documents (folder_path);
CREATE UNIQUE INDEX ix_documents_share_token ON documents (share_token);
ALTER TABLE custom_dictionaries ADD CONSTRAINT custom_dictionaries_pkey PRIMARY KEY (id);
ALTER TABLE custom_dictionaries ADD CONSTRAINT uq_user_word UNIQUE (user_id, word);
CREATE INDEX ix_custom_dictionaries_user_id ON custom_dictionaries (user_id);
ALTER TABLE document_recovery ADD CONSTRAINT document_recovery_pkey PRIMARY KEY (id);
CREATE INDEX ix_document_recovery_id ON document_recovery (id);
ALTER TABLE documents ADD CONSTRAINT documents_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE users ADD CONSTRAINT fk_users_current_doc_id
    FOREIGN KEY (current_doc_id) REFERENCES documents (id) ON DELETE SET NULL;
ALTER TABLE custom_dictionaries ADD CONSTRAINT custom_dictionaries_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE document_recovery ADD CONSTRAINT document_recovery_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id);
"""

# Approximate bytes per COPY row, used to turn a size into row counts.
_DOC_OVERHEAD = 170
_DOC_SHARE, _RECOVERY_SHARE = 0.88, 0.10
_DOCS_PER_USER = 50


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


_FOLDERS = ["/", "/", "/", "/Work", "/Work/Projects", "/Personal", "/Notes/2024", "/Archive",
            "/Work/Meetings", "/Recipes", "/Research/Papers"]


def _ts(rng: random.Random) -> str:
    return (f"202{rng.randint(1, 5)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            f".{rng.randint(0, 999999):06d}+00")


def document_rows(plan: Plan, start: int, stop: int) -> Iterator[bytes]:
    """COPY text rows for documents ``start..stop-1`` (ids are 1-based), in ~1 MB chunks."""
    fk = MarkdownFaker(plan.seed * 1_000_003 + start, plan.mean_len)
    rng = fk.rng
    buf: list[str] = []
    buf_len = 0
    for doc_id in range(start, stop):
        user_id = 1 + (doc_id - 1) % plan.n_users
        content = fk.document()
        name = f"{fk.title()} {doc_id}"
        created = _ts(rng)
        shared = rng.random() < 0.05
        token = f"{rng.getrandbits(128):032x}{rng.getrandbits(128):032x}" if shared else "\\N"
        sha = f"{rng.getrandbits(256):064x}" if rng.random() < 0.5 else "\\N"
        row = (f"{doc_id}\t{name}\t{content}\t{rng.choice(_FOLDERS)}\t{created}\t{_ts(rng)}\t"
               f"{user_id}\t{token}\t{'t' if shared else 'f'}\t{sha}\n")
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
    buf: list[str] = []
    for uid in range(1, plan.n_users + 1):
        first, last = (w.capitalize() for w in fk._words(1)[0].split(" "))
        bio = " ".join(fk._words(rng.randint(3, 20))) if rng.random() < 0.6 else "\\N"
        pw = "$2b$12$" + "".join(rng.choice("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789") for _ in range(53))
        mfa = rng.random() < 0.2
        totp = f"{rng.getrandbits(160):040X}"[:32] if mfa else "\\N"
        cur = str(rng.randint(1, plan.n_docs)) if rng.random() < 0.7 else "\\N"
        buf.append(
            f"{uid}\tuser{uid}.{first.lower()}@example.com\t{pw}\t{first}\t{last}\t"
            f"{first} {last}\t{bio}\tt\t{'t' if rng.random() < 0.9 else 'f'}\t"
            f"{'t' if uid == 1 else 'f'}\t{'t' if mfa else 'f'}\t{totp}\t"
            f"t\tt\t{rng.choice((40, 50, 60))}\t{cur}\t\\N\t\\N\t{_ts(rng)}\t{_ts(rng)}\n"
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
            note = " ".join(fk._words(rng.randint(1, 4))) if rng.random() < 0.3 else "\\N"
            buf.append(f"{did}\t{uid}\t{w}\t{note}\t{_ts(rng)}\t{_ts(rng)}\n")
        if len(buf) >= 5000:
            yield "".join(buf).encode()
            buf = []
    if buf:
        yield "".join(buf).encode()


async def _aiter(chunks: Iterator[bytes]):  # type: ignore[no-untyped-def]
    for c in chunks:
        yield c


async def _copy(conn_kwargs: dict[str, Any], table: str, chunks: Iterator[bytes]) -> None:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        await conn.copy_to_table(table, source=_aiter(chunks), format="text")
    finally:
        await conn.close()


def _doc_worker(conn_kwargs: dict[str, Any], plan_d: dict[str, Any], start: int, stop: int) -> None:
    plan = Plan(**plan_d)
    asyncio.run(_copy(conn_kwargs, "documents", document_rows(plan, start, stop)))


RECOVERY_SQL = """
INSERT INTO document_recovery (id, user_id, document_id, name, category, content, recovered_at,
                               collision)
SELECT g, d.user_id, CASE WHEN g % 3 = 0 THEN NULL ELSE d.id::text END, d.name,
       (ARRAY['General','Work','Personal','Drafts'])[1 + g % 4],
       CASE WHEN g % 2 = 0 THEN d.content || E'\\n\\n<!-- recovered ' || md5(g::text) || ' -->'
            ELSE left(d.content, greatest(100, length(d.content) - (g % 500))) END,
       timestamp '2024-01-01' + g * interval '37 seconds', g % 10 = 0
FROM generate_series(1, $1::int) AS g
JOIN documents d ON d.id = 1 + ((g::bigint * 7919) % $2::int)
"""


@dataclass
class GenResult:
    plan: dict[str, Any]
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


async def _post(conn_kwargs: dict[str, Any], plan: Plan) -> tuple[dict[str, int], int, int]:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        await conn.execute(POST_DDL)
        for seq, table in (("users_id_seq", "users"), ("documents_id_seq", "documents"),
                           ("custom_dictionaries_id_seq", "custom_dictionaries"),
                           ("document_recovery_id_seq", "document_recovery")):
            await conn.execute(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))")
        await conn.execute("INSERT INTO alembic_version VALUES ($1)", ALEMBIC_REVISION)
        rows: dict[str, int] = {}
        logical = 0
        for t in ("users", "documents", "custom_dictionaries", "document_recovery",
                  "alembic_version"):
            n, b = await conn.fetchrow(
                f"SELECT count(*), coalesce(sum(length(t::text)), 0) FROM {t} AS t"
            )
            rows[t] = int(n)
            logical += int(b)
        dbsize = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    return rows, logical, dbsize


async def _vacuum(conn_kwargs: dict[str, Any], table: str) -> None:
    conn = await asyncpg.connect(**conn_kwargs)
    try:
        # Sets hint bits and the visibility map now, so the first timed dump does not pay for it.
        await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
    finally:
        await conn.close()


def generate(conn_kwargs: dict[str, Any], size: int, *, seed: int = 1, jobs: int = 2,
             log: Any = None) -> GenResult:
    """Create the schema in an empty database and fill it; returns timings and sizes."""
    plan = make_plan(size, seed)
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    asyncio.run(_exec(conn_kwargs, PRE_DDL))
    say(f"generating {plan.n_docs} documents, {plan.n_users} users "
        f"({size / 1e6:.0f} MB logical) with {jobs} workers")
    bounds = [1 + plan.n_docs * i // jobs for i in range(jobs + 1)]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_doc_worker, args=(conn_kwargs, asdict(plan), bounds[i],
                                                   bounds[i + 1])) for i in range(jobs)]
    for p in procs:
        p.start()

    async def small() -> None:
        await _copy(conn_kwargs, "users", user_rows(plan))
        await _copy(conn_kwargs, "custom_dictionaries", dictionary_rows(plan))

    asyncio.run(small())
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"document loader exited with {p.exitcode}")
    asyncio.run(_exec(conn_kwargs, "CREATE UNIQUE INDEX tmp_documents_id ON documents (id)"))
    asyncio.run(_exec(conn_kwargs, RECOVERY_SQL, plan.n_recovery, plan.n_docs))
    asyncio.run(_exec(conn_kwargs, "DROP INDEX tmp_documents_id"))
    t1 = time.perf_counter()
    say(f"loaded in {t1 - t0:.1f}s; adding constraints and indexes, vacuuming")

    async def vacuum_all() -> None:
        await asyncio.gather(_vacuum(conn_kwargs, "documents"),
                             _vacuum(conn_kwargs, "document_recovery"))
        await _vacuum(conn_kwargs, "users")
        await _vacuum(conn_kwargs, "custom_dictionaries")

    rows, logical, dbsize = asyncio.run(_post(conn_kwargs, plan))
    asyncio.run(vacuum_all())
    asyncio.run(_exec(conn_kwargs, "CHECKPOINT"))
    t2 = time.perf_counter()
    return GenResult(plan=asdict(plan), seconds_load=t1 - t0, seconds_post=t2 - t1,
                     seconds_total=t2 - t0, logical_bytes=logical, database_bytes=dbsize,
                     rows=rows)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ops.dburl import parse_database_url

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1GB"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    raw = os.environ.get("DATABASE_URL")
    if not raw:
        print("set DATABASE_URL (in the environment) to an empty database", file=sys.stderr)
        return 2
    url = parse_database_url(raw)
    res = generate(url.connect_kwargs(), args.size, seed=args.seed, jobs=args.jobs,
                   log=lambda m: print(m, file=sys.stderr))
    print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
