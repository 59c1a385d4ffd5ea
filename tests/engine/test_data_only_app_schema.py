"""Data-only restores into the app's own migrated schema (real PostgreSQL).

The markdown-manager schema has a foreign-key cycle (users.current_doc_id → documents,
documents.user_id → users) and a self-reference (comments.parent_id), all NOT DEFERRABLE. A
data-only restore must load it in one transaction, as a superuser and as a plain owner of the
tables, and leave every constraint exactly as it was. Errors name the table, constraint, column
and row, never a value of the row.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.dburl import DbUrl
from ops.engine.backup import backup
from ops.engine.restore import restore
from ops.engine.results import RestoreMode
from ops.errors import RestoreFailed
from tests.fidelity import data_digest, schema_text

pytestmark = pytest.mark.postgres

APP_SCHEMA = """
CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO public.alembic_version VALUES ('0042_app');
CREATE TABLE public.users (
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    current_doc_id int
);
CREATE TABLE public.documents (
    id serial PRIMARY KEY,
    user_id int NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    reviewer_id int,
    title text NOT NULL
);
ALTER TABLE public.users ADD CONSTRAINT users_current_doc_id_fkey
    FOREIGN KEY (current_doc_id) REFERENCES public.documents (id) ON DELETE SET NULL;
COMMENT ON CONSTRAINT users_current_doc_id_fkey ON public.users IS 'the open document';
CREATE TABLE public.comments (
    id serial PRIMARY KEY,
    document_id int NOT NULL REFERENCES public.documents (id) ON DELETE CASCADE,
    parent_id int REFERENCES public.comments (id) MATCH FULL ON UPDATE CASCADE,
    body text NOT NULL
);
CREATE INDEX comments_parent_idx ON public.comments (parent_id);
"""

# A key added NOT VALID over rows that break it must come back NOT VALID (not be validated).
NOT_VALID_KEY = """
ALTER TABLE public.documents ADD CONSTRAINT documents_reviewer_fkey
    FOREIGN KEY (reviewer_id) REFERENCES public.users (id) NOT VALID;
"""

APP_DATA = """
INSERT INTO public.users (id, email, password_hash) VALUES
    (1, 'ada@example.org', 'pbkdf2$ADA-HASH'), (2, 'bob@example.org', 'pbkdf2$BOB-HASH');
INSERT INTO public.documents (id, user_id, reviewer_id, title) VALUES
    (10, 1, 999, 'draft'), (11, 2, NULL, 'notes'), (12, 1, 2, 'plan');
UPDATE public.users SET current_doc_id = 12 WHERE id = 1;
UPDATE public.users SET current_doc_id = 11 WHERE id = 2;
INSERT INTO public.comments (id, document_id, parent_id, body) VALUES (100, 10, NULL, 'root');
INSERT INTO public.comments (id, document_id, parent_id, body) VALUES (101, 10, 100, 'reply');
-- a reply whose id is lower than its parent's: no row order satisfies a one-pass check
INSERT INTO public.comments (id, document_id, parent_id, body) VALUES (150, 11, NULL, 'late root');
INSERT INTO public.comments (id, document_id, parent_id, body) VALUES (99, 11, 150, 'early id');
SELECT setval('public.users_id_seq', 2), setval('public.documents_id_seq', 12),
       setval('public.comments_id_seq', 150);
"""

CONSTRAINTS_SQL = """
SELECT k.conrelid::regclass::text, k.conname, k.contype, k.confrelid::regclass::text,
       pg_catalog.pg_get_constraintdef(k.oid), k.convalidated, k.condeferrable, k.condeferred,
       k.conindid::regclass::text, pg_catalog.obj_description(k.oid, 'pg_constraint')
FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace
WHERE n.nspname = 'public' ORDER BY 1, 2
"""


def _constraints(server, database: str) -> str:
    return server.psql(CONSTRAINTS_SQL, database)


@pytest.fixture
def owner_role(pg15) -> Iterator[tuple[str, str]]:
    """A LOGIN role without superuser (nor replication) rights; removed afterwards."""
    name = f"app_owner_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    pg15.psql(f"CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'")
    yield name, password
    for db in pg15.psql(
        f"SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
        f"WHERE r.rolname = '{name}'"
    ).split():
        pg15.psql(f'ALTER DATABASE "{db}" OWNER TO postgres')
        pg15.psql(f"REASSIGN OWNED BY {name} TO postgres; DROP OWNED BY {name}", db)
    pg15.psql(f"DROP ROLE {name}")


def _app_db(server, make_db, owner: str | None = None, *, data: bool) -> DbUrl:
    url = make_db(server)
    script = APP_SCHEMA + NOT_VALID_KEY + (APP_DATA if data else "")
    if owner is not None:
        server.psql(f'ALTER DATABASE "{url.database}" OWNER TO {owner}')
        script = f"SET ROLE {owner};\n{script}"
    if data:  # NOT VALID needs the bad row to exist before the key
        script = script.replace(NOT_VALID_KEY, "") + NOT_VALID_KEY
    server.psql(script, url.database)
    return url


@pytest.mark.parametrize("as_owner", [False, True], ids=["superuser", "non-superuser owner"])
def test_data_only_restore_loads_a_foreign_key_cycle_and_keeps_every_constraint(
    pg15, make_db, tmp_path, owner_role, as_owner
):
    src = _app_db(pg15, make_db, data=True)
    path = Path(asyncio.run(backup(src, tmp_path / "app.mmops")).path)
    owner, password = owner_role
    dst = _app_db(pg15, make_db, owner if as_owner else None, data=False)
    if as_owner:
        dst = DbUrl(dst.host, dst.port, dst.database, owner, password, {})
        assert pg15.psql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{owner}'").strip() == "f"
    schema_before = schema_text(pg15.bindir, dst)
    constraints_before = _constraints(pg15, dst.database)

    result = asyncio.run(restore(dst, path, mode=RestoreMode.DATA_ONLY))

    assert result.total_rows == 2 + 3 + 4  # alembic_version is kept, not reloaded
    assert data_digest(dst) == data_digest(src)
    assert schema_text(pg15.bindir, dst) == schema_before
    assert _constraints(pg15, dst.database) == constraints_before
    assert "documents_reviewer_fkey" in constraints_before  # still NOT VALID (f) after
    assert "|f|f|f|" in next(
        line for line in constraints_before.splitlines() if "documents_reviewer_fkey" in line
    )


def test_data_only_restore_that_breaks_a_foreign_key_rolls_back_and_names_it(
    pg15, make_db, tmp_path
):
    src = _app_db(pg15, make_db, data=True)
    pg15.psql("ALTER TABLE public.comments DROP CONSTRAINT comments_parent_id_fkey;"
              "INSERT INTO public.comments VALUES (200, 10, 4242, 'orphan')", src.database)
    path = Path(asyncio.run(backup(src, tmp_path / "app.mmops")).path)
    dst = _app_db(pg15, make_db, data=True)
    before = (schema_text(pg15.bindir, dst), data_digest(dst), _constraints(pg15, dst.database))
    with pytest.raises(RestoreFailed, match="comments_parent_id_fkey") as err:
        asyncio.run(restore(dst, path, mode=RestoreMode.DATA_ONLY))
    assert "unchanged" in str(err.value)
    assert (schema_text(pg15.bindir, dst), data_digest(dst), _constraints(pg15, dst.database)) == (
        before
    )


SECRET = "pbkdf2$SECRET-HASH-7f3a9c"


@pytest.mark.parametrize(
    ("target_change", "names"),
    [
        (
            "ALTER TABLE public.users ADD CONSTRAINT users_hash_is_argon2 "
            "CHECK (password_hash LIKE 'argon2%') NOT VALID",
            ["row 2", "public.users", "users_hash_is_argon2", "check"],
        ),
        (
            "CREATE TYPE public.hash_kind AS ENUM ('argon2');"
            "ALTER TABLE public.users ALTER COLUMN password_hash TYPE public.hash_kind "
            "USING NULL; ALTER TABLE public.users ALTER COLUMN password_hash DROP NOT NULL",
            ["row 1", "public.users", "password_hash"],
        ),
    ],
    ids=["check violation", "value of another type"],
)
def test_restore_error_names_table_row_and_constraint_but_no_value(
    pg15, make_db, tmp_path, target_change, names
):
    src = make_db(pg15)
    pg15.psql(
        APP_SCHEMA
        + "INSERT INTO public.users (id, email, password_hash) VALUES "
        f"(1, 'first@example.org', 'argon2$fine'), (2, 'alice@example.org', '{SECRET}');",
        src.database,
    )
    path = Path(asyncio.run(backup(src, tmp_path / "app.mmops")).path)
    dst = make_db(pg15)
    pg15.psql(APP_SCHEMA + target_change, dst.database)
    with pytest.raises(RestoreFailed) as err:
        asyncio.run(restore(dst, path, mode=RestoreMode.DATA_ONLY))
    message = str(err.value)
    for value in (SECRET, "SECRET", "alice@example.org", "first@example.org", "argon2$fine"):
        assert value not in message
    for name in names:
        assert name in message, message
    assert "unchanged" in message

