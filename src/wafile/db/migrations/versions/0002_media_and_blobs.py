"""media and blobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wafile.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("ref_count", sa.Integer(), nullable=False),
        sa.Column("created_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "media",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("whatsapp_sendable", sa.Boolean(), nullable=False),
        sa.Column("whatsapp_sent_as", sa.String(length=16), nullable=True),
        sa.Column("whatsapp_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_media_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"], name=op.f("fk_media_sha256_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
    )
    op.create_index("ix_media_account_created", "media", ["account_id", "created_at", "id"])
    op.create_index("ix_media_expires_at", "media", ["expires_at"])
    op.create_index("ix_media_sha256", "media", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_media_sha256", table_name="media")
    op.drop_index("ix_media_expires_at", table_name="media")
    op.drop_index("ix_media_account_created", table_name="media")
    op.drop_table("media")
    op.drop_table("blobs")
