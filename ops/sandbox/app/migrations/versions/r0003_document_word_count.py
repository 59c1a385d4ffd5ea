"""documents.word_count and a GIN index on tags

Revision ID: 0003_document_word_count
Revises: 0002_dictionaries_recovery
Create Date: 2024-09-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_document_word_count"
down_revision = "0002_dictionaries_recovery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "documents",
        sa.Column("word_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE documents SET word_count = "
        "coalesce(array_length(regexp_split_to_array(trim(content), '\\s+'), 1), 0)"
    )
    op.add_column("users", sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_documents_tags", "documents", ["tags"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_documents_tags", table_name="documents")
    op.drop_column("users", "last_login_at")
    op.drop_column("documents", "word_count")
