"""Alembic env for the sandbox app: renders the migrations as SQL (alembic's offline mode).

``ops.sandbox.app.migrate`` executes that SQL over asyncpg inside one transaction, so neither a
sync driver nor greenlet is needed, and no URL or password is ever in a config file or argv.
``transactional_ddl=False`` keeps BEGIN/COMMIT out of the script: the caller owns the transaction.
"""

from __future__ import annotations

from alembic import context

if not context.is_offline_mode():
    raise RuntimeError("Run these migrations through ops.sandbox.app.migrate().")

context.configure(
    dialect_name="postgresql",
    literal_binds=True,
    transactional_ddl=False,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
