"""Deterministic sample data for the sandbox app: users, markdown documents, dictionaries, recovery.

The same arguments always give the same rows (a seeded ``random.Random`` and fixed timestamps),
loaded with binary COPY in one transaction. Refuses to touch a database that already has users.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg

from ...dburl import DbUrl, redact_text
from ...errors import DatabaseError, UsageError

EPOCH = datetime(2024, 1, 15, 9, 30, tzinfo=timezone.utc)

FIRST = ["Ada", "Zoë", "Björn", "Chloé", "Dmitri", "Émile", "Farah", "Giulia", "Håkon", "Iñigo",
         "Jun", "Kateřina", "Lars", "Małgorzata", "Noor", "Olúwasẹun", "Priya", "Quentin",
         "Renée", "Søren", "Tomás", "Uxía", "Vũ", "Wiremu", "Xiomara", "Yūki", "Zeynep"]
LAST = ["Lovelace", "Müller", "Ångström", "Dubois", "Ivanov", "Zola", "Haddad", "Rossi",
        "Øverland", "Ibáñez", "Tanaka", "Nováková", "Eriksson", "Wójcik", "Rahman", "Adébáyọ̀",
        "Iyer", "Lefèvre", "Giraud", "Kierkegaard", "Ó Briain", "Castro", "Nguyễn", "Parata"]
CATEGORIES = ["General", "Work", "Personal", "Research", "Recipes", "Travel", "Notes", "Drafts"]
TAGS = ["todo", "idea", "meeting", "draft", "reference", "python", "postgres", "backup",
        "travel", "recipe", "読書", "café", "ünïcode", "weekly", "archive"]
WORDS = ("the quick brown fox jumps over lazy dog markdown document editor preview spell check "
         "dictionary backup restore database schema migration alembic table index server "
         "snapshot transaction recovery autosave category public private note draft review "
         "naïve café résumé façade jalapeño smörgåsbord über coöperate 東京 données").split()
DICT_WORDS = ["asyncpg", "alembic", "PostgreSQL", "Kubernetes", "markdown", "frontmatter",
              "dotenv", "SQLAlchemy", "naïveté", "Zürich", "kubectl", "pgbouncer", "WAL",
              "résumé", "Ångström", "fastapi", "uvicorn", "systemd", "nginx", "Fabric"]
RECOVERY_REASONS = ["autosave", "crash", "conflict", "manual"]


@dataclass(frozen=True)
class SeedResult:
    users: int
    documents: int
    dictionary_words: int
    recovery_rows: int


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 16))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"])


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


def markdown_document(rng: random.Random, title: str, target: int = 2500) -> str:
    """A realistic markdown body of about ``target`` characters (headings, lists, code, tables)."""
    parts = [f"# {title}", "", _paragraph(rng), ""]
    section = 1
    while sum(len(p) + 1 for p in parts) < target:
        kind = rng.randrange(6)
        if kind == 0:
            parts += [f"## Section {section}: {rng.choice(WORDS)} ✍️", ""]
            section += 1
        elif kind == 1:
            parts += [f"- [{rng.choice(' x')}] {_sentence(rng)}" for _ in range(rng.randint(2, 5))]
            parts.append("")
        elif kind == 2:
            parts += ["```python", f"def {rng.choice(WORDS[:10])}(x):",
                      f"    return x * {rng.randint(2, 99)}  # {rng.choice(WORDS)}", "```", ""]
        elif kind == 3:
            parts += ["| key | value | note |", "| --- | ---: | --- |"]
            parts += [f"| {rng.choice(WORDS)} | {rng.randint(1, 9999)} | {rng.choice(WORDS)} |"
                      for _ in range(rng.randint(2, 4))]
            parts.append("")
        elif kind == 4:
            parts += [f"> {_sentence(rng)} — *{rng.choice(FIRST)}*", ""]
        else:
            parts += [_paragraph(rng) + " Tab\there, emoji 🚀, and a [link](https://example.org/"
                      f"{rng.randint(1, 999)}).", ""]
    return "\n".join(parts) + "\n"


def _users(rng: random.Random, n: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for i in range(1, n + 1):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        salt = hashlib.sha256(f"salt{i}".encode()).hexdigest()[:22]
        fake_hash = "$2b$12$" + salt + hashlib.sha256(f"pw{i}".encode()).hexdigest()[:31]
        created = EPOCH + timedelta(days=i, minutes=rng.randint(0, 1440))
        settings = {"theme": rng.choice(["light", "dark"]), "editor": {"font_size": 14 + i % 4},
                    "locale": rng.choice(["en", "de", "fr", "ja", "pt-BR"])}
        rows.append((i, f"user{i:03d}@example.com", name, fake_hash, i % 7 != 0, i % 3 != 0,
                     json.dumps(settings, ensure_ascii=False), created, created,
                     created + timedelta(days=rng.randint(1, 200)) if i % 5 else None))
    return rows


async def seed(
    url: DbUrl, users: int = 20, documents: int = 200, *, random_seed: int = 20240115
) -> SeedResult:
    """Insert deterministic sample rows into a migrated, empty app database (one transaction)."""
    if users < 1 or documents < 0:
        raise UsageError("seed needs at least one user and a non-negative document count.")
    rng = random.Random(random_seed)  # noqa: S311 - sample data must be reproducible
    user_rows = _users(rng, users)
    doc_rows: list[tuple[object, ...]] = []
    for d in range(1, documents + 1):
        uid = rng.randint(1, users)
        title = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} #{d}"
        content = markdown_document(rng, title)
        created = EPOCH + timedelta(days=rng.randint(0, 300), seconds=d)
        tags = sorted(set(rng.sample(TAGS, rng.randint(0, 4))))
        meta = {"words": len(content.split()), "pinned": d % 11 == 0,
                "source": rng.choice(["web", "import", "api"])}
        doc_rows.append((d, uid, title, content, rng.choice(CATEGORIES), d % 4 == 0, tags,
                         json.dumps(meta), created,
                         created + timedelta(hours=rng.randint(0, 5000)), len(content.split())))
    dict_rows: list[tuple[object, ...]] = []
    for uid in range(1, users + 1):
        for word in rng.sample(DICT_WORDS, rng.randint(2, 8)):
            dict_rows.append((len(dict_rows) + 1, uid, word, EPOCH + timedelta(days=uid)))
    rec_rows: list[tuple[object, ...]] = []
    for r in range(1, max(1, documents // 7) + 1):
        if not doc_rows:
            break
        doc = doc_rows[rng.randrange(len(doc_rows))]
        rec_rows.append((r, doc[0], doc[1], str(doc[3])[: rng.randint(200, 2000)],
                         rng.choice(RECOVERY_REASONS),
                         EPOCH + timedelta(days=rng.randint(0, 300), seconds=r)))

    try:
        conn = await asyncpg.connect(**url.connect_kwargs())
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(
            f"Cannot connect to {url.redacted()}: {redact_text(str(exc), [url.password])}"
        ) from exc
    try:
        async with conn.transaction():
            if await conn.fetchval("SELECT count(*) FROM users"):
                raise UsageError(f"{url.redacted()} already has users; seed only fills an "
                                 "empty app database.")
            await conn.copy_records_to_table(
                "users", records=user_rows,
                columns=["id", "email", "display_name", "password_hash", "is_active",
                         "is_verified", "settings", "created_at", "updated_at", "last_login_at"])
            await conn.copy_records_to_table(
                "documents", records=doc_rows,
                columns=["id", "user_id", "title", "content", "category", "is_public", "tags",
                         "metadata", "created_at", "updated_at", "word_count"])
            await conn.copy_records_to_table(
                "custom_dictionaries", records=dict_rows,
                columns=["id", "user_id", "word", "created_at"])
            await conn.copy_records_to_table(
                "document_recovery", records=rec_rows,
                columns=["id", "document_id", "user_id", "content", "reason", "recovered_at"])
            # Explicit ids were given: move the identity sequences past them.
            for table in ("users", "documents", "custom_dictionaries", "document_recovery"):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
    except asyncpg.PostgresError as exc:
        raise DatabaseError(
            f"Seeding {url.redacted()} failed (nothing changed): "
            f"{redact_text(str(exc), [url.password])}"
        ) from exc
    finally:
        await conn.close()
    return SeedResult(len(user_rows), len(doc_rows), len(dict_rows), len(rec_rows))
