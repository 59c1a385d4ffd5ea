"""A markdown-manager-like app database: alembic migrations shipped in the package, sample data.

    migrate(url, revision="head")   run the migrations (async, asyncpg via SQLAlchemy)
    head_revision()                 the newest revision id
    seed(url, users=20, documents=200)   deterministic sample rows
"""

from __future__ import annotations

from .migrate import APP_TABLES, current_revision, head_revision, migrate
from .seed import SeedResult, seed

__all__ = ["APP_TABLES", "SeedResult", "current_revision", "head_revision", "migrate", "seed"]
