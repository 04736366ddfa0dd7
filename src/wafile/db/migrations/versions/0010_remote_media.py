"""remote media: media providers, and the URL a media was fetched from

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wafile.db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = wafile.db.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "media_providers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("auth", sa.String(length=16), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("allowed", sa.JSON(), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_media_providers_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_providers")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_media_providers_account_id")),
    )
    # NULL for uploads and for media stored before remote files existed.
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("source_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_column("source_url")
    op.drop_table("media_providers")
