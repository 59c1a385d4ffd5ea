"""Alembic environment for the sandbox app (loaded by alembic, not imported by us)."""
