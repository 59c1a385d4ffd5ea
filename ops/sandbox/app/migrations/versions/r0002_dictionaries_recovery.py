"""custom dictionaries and document recovery

Revision ID: 0002_dictionaries_recovery
Revises: 0001_users_documents
Create Date: 2024-05-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_dictionaries_recovery"
down_revision = "0001_users_documents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custom_dictionaries",
        sa.Column("id", sa.Integer, sa.Identity(always=False), primary_key=True),
        sa.Column("user_id", sa.Integer,
                  sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_dictionaries_user"),
                  nullable=False),
        sa.Column("word", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.UniqueConstraint("user_id", "word", name="uq_dictionaries_user_word"),
    )
    op.create_table(
        "document_recovery",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("document_id", sa.BigInteger,
                  sa.ForeignKey("documents.id", ondelete="CASCADE", name="fk_recovery_document"),
                  nullable=False),
        sa.Column("user_id", sa.Integer,
                  sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_recovery_user"),
                  nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("reason", sa.String(50), nullable=False, server_default="autosave"),
        sa.Column("recovered_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.create_index("ix_recovery_document", "document_recovery", ["document_id", "recovered_at"])


def downgrade() -> None:
    op.drop_table("document_recovery")
    op.drop_table("custom_dictionaries")
